"""Walk files, folders and zip archives for import, refusing hostile archives.

Zip members are checked before anything is extracted: absolute paths and
``..`` components (path traversal), symlinks, per-member compression ratios
and the total expanded size (bombs). Members are read into memory one at a
time and never written under their own names.
"""

from __future__ import annotations

import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from trialpacs.errors import InvalidInput

SKIP_NAMES = frozenset({"DICOMDIR", ".DS_Store", "Thumbs.db"})


@dataclass(frozen=True, slots=True)
class SourceItem:
    """One candidate file: where it came from (for messages) and how to read it."""

    label: str
    size: int
    _path: Path | None = None
    _zip: zipfile.ZipFile | None = None
    _member: zipfile.ZipInfo | None = None

    def read(self) -> bytes:
        if self._path is not None:
            return self._path.read_bytes()
        assert self._zip is not None and self._member is not None
        return self._zip.read(self._member)


@dataclass(frozen=True, slots=True)
class ZipLimits:
    max_ratio: float = 200.0
    max_total_bytes: int = 20 * 1024**3
    max_members: int = 1_000_000


def check_zip(zf: zipfile.ZipFile, label: str, limits: ZipLimits) -> list[zipfile.ZipInfo]:
    """Validate every member up front; raise InvalidInput naming the first problem."""
    infos = zf.infolist()
    if len(infos) > limits.max_members:
        raise InvalidInput(
            f"{label}: {len(infos)} members exceed the limit of {limits.max_members}"
        )
    total = 0
    members = []
    for info in infos:
        name = info.filename
        pure = PurePosixPath(name.replace("\\", "/"))
        if pure.is_absolute() or ".." in pure.parts or (len(name) > 1 and name[1] == ":"):
            raise InvalidInput(f"{label}: member {name!r} escapes the archive (path traversal)")
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise InvalidInput(f"{label}: member {name!r} is a symbolic link")
        if info.is_dir():
            continue
        if info.flag_bits & 0x1:
            raise InvalidInput(f"{label}: member {name!r} is encrypted")
        if info.compress_size > 0 and info.file_size / info.compress_size > limits.max_ratio:
            raise InvalidInput(
                f"{label}: member {name!r} expands {info.file_size / info.compress_size:.0f}x "
                f"(limit {limits.max_ratio:.0f}x); refusing a possible zip bomb"
            )
        if info.compress_size == 0 and info.file_size > 0:
            raise InvalidInput(f"{label}: member {name!r} has an impossible size; refusing it")
        total += info.file_size
        if total > limits.max_total_bytes:
            raise InvalidInput(
                f"{label}: expands to more than {limits.max_total_bytes} bytes; refusing a "
                "possible zip bomb"
            )
        members.append(info)
    return members


def iter_sources(paths: list[Path], limits: ZipLimits | None = None) -> Iterator[SourceItem]:
    """Yield candidate files under ``paths``; zips are opened and checked first."""
    limits = limits or ZipLimits()
    for path in paths:
        if not path.exists():
            raise InvalidInput(f"{path}: no such file or directory")
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink()):
                yield from _file(child, limits)
        else:
            yield from _file(path, limits)


def _file(path: Path, limits: ZipLimits) -> Iterator[SourceItem]:
    if path.name in SKIP_NAMES or path.name.startswith("._"):
        return
    if zipfile.is_zipfile(path) and not _looks_dicom(path):
        # Left open: items read from it lazily; it closes when the last item is dropped.
        zf = zipfile.ZipFile(path)
        for info in check_zip(zf, str(path), limits):
            base = PurePosixPath(info.filename).name
            if base in SKIP_NAMES or base.startswith("._"):
                continue
            yield SourceItem(f"{path}!{info.filename}", info.file_size, _zip=zf, _member=info)
        return
    yield SourceItem(str(path), path.stat().st_size, _path=path)


def _looks_dicom(path: Path) -> bool:
    with path.open("rb") as fh:
        head = fh.read(132)
    return head[128:132] == b"DICM"
