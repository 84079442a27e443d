"""Whole files or nothing: a reader never sees a half-written file.

Every writer of files outside the blob store (de-identified outputs, export
files, cached videos) needs the same three steps: write a temporary file in
the target's directory, optionally make it durable, rename it over the
target. A crash leaves either the old file or the new one, and at most a
stray temporary file that the prefix names.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["write_atomic"]


def write_atomic(
    path: Path, data: bytes, *, durable: bool = False, prefix: str = ".tmp-", suffix: str = ""
) -> None:
    """Write ``data`` to ``path`` in one rename; ``durable`` fsyncs the file first.

    The directory entry itself is the caller's to fsync (the blob store does
    it once per directory for a batch).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
