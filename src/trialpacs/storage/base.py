"""The one small interface every blob store implements.

Keys are built here from UIDs that the parser validated, never from names a
client supplied, so no store has to defend against path tricks on its own
(each still refuses keys that do not match the expected shape).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from trialpacs.dicom.uids import require_uid

_KEY_RE = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")


@runtime_checkable
class BlobStore(Protocol):
    """Durable byte storage addressed by validated keys."""

    name: str

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``; returns only when the bytes are durable."""

    def put_many(self, items: list[tuple[str, bytes]]) -> None:
        """Store several blobs; returns only when all are durable."""

    def get(self, key: str) -> bytes:
        """Return the bytes; raise KeyError if absent."""

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """Return ``length`` bytes from ``start``; raise KeyError if absent."""

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove the key; absent keys are not an error."""

    def keys(self, prefix: str = "") -> Iterator[str]: ...


def check_key(key: str) -> str:
    """Refuse keys with anything but the characters our key builders use."""
    if not _KEY_RE.match(key) or ".." in key.split("/"):
        raise ValueError(f"invalid blob key {key!r}")
    return key


def instance_key(study_uid: str, series_uid: str, sop_uid: str) -> str:
    """Where an instance's bytes live; UIDs are re-validated as a last line of defence."""
    require_uid(study_uid, "StudyInstanceUID")
    require_uid(series_uid, "SeriesInstanceUID")
    require_uid(sop_uid, "SOPInstanceUID")
    return f"{study_uid}/{series_uid}/{sop_uid}.dcm"
