"""Local-directory blob store: temp file, fsync, rename, fsync of the directory."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from trialpacs.storage.atomic import write_atomic
from trialpacs.storage.base import check_key


class LocalStore:
    """Files under one root directory; a crash never leaves a partial file at a key."""

    def __init__(self, root: Path, name: str = "local") -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.name = name

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        directory = path.parent
        created = not directory.exists()
        write_atomic(path, data, durable=True, prefix=".tmp-", suffix=".part")
        _fsync_dir(directory)
        if created:
            # The new directory's own entry must be durable too.
            for parent in (directory.parent, directory.parent.parent):
                if parent.is_relative_to(self.root):
                    _fsync_dir(parent)

    def put_many(self, items: list[tuple[str, bytes]]) -> None:
        """Store several blobs; each directory is fsynced once, not once per file."""
        if len(items) == 1:
            self.put(*items[0])
            return
        staged: list[tuple[str, Path]] = []
        dirs: set[Path] = set()
        new_dirs: set[Path] = set()
        try:
            for key, data in items:
                path = self._path(key)
                if not path.parent.exists():
                    new_dirs.add(path.parent)
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
                staged.append((tmp, path))
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
            # fsync releases the GIL: flush the files in parallel.
            list(_SYNC_POOL.map(_fsync_path, [tmp for tmp, _ in staged]))
            for tmp, path in staged:
                os.replace(tmp, path)
                dirs.add(path.parent)
        except BaseException:
            for tmp, _ in staged:
                Path(tmp).unlink(missing_ok=True)
            raise
        for directory in new_dirs:
            for parent in (directory.parent, directory.parent.parent):
                if parent.is_relative_to(self.root):
                    dirs.add(parent)
        list(_SYNC_POOL.map(_fsync_dir, sorted(dirs)))

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise KeyError(key) from None

    def get_range(self, key: str, start: int, length: int) -> bytes:
        try:
            with self._path(key).open("rb") as fh:
                fh.seek(start)
                return fh.read(length)
        except FileNotFoundError:
            raise KeyError(key) from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def keys(self, prefix: str = "") -> Iterator[str]:
        base = self.root
        for path in sorted(base.rglob("*")):
            if path.is_file() and not path.name.startswith(".tmp-"):
                rel = path.relative_to(base).as_posix()
                if rel.startswith(prefix):
                    yield rel

    def cleanup_partials(self) -> int:
        """Remove temp files left by a crash mid-write; returns how many."""
        count = 0
        for path in self.root.rglob(".tmp-*.part"):
            path.unlink(missing_ok=True)
            count += 1
        return count


_SYNC_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="fsync")


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
