"""Enumerate inputs (files, folders, zips) without trusting what they say.

Zip members are read in memory, never extracted: names are used only as labels
in messages, and members whose names try to escape (absolute, ``..``) or whose
sizes look like a compression bomb are refused with a clear reason.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from trialpacs.errors import InvalidInput, TooLarge

MAX_MEMBER_BYTES = 2 << 30  # 2 GiB uncompressed per member
MAX_ARCHIVE_BYTES = 64 << 30  # total uncompressed per archive
MAX_RATIO = 200  # uncompressed/compressed, for members over 1 MiB
MAX_MEMBERS = 200_000


@dataclass(frozen=True)
class InputItem:
    """One candidate instance: ``read`` returns its bytes or raises InvalidInput."""

    label: str
    read: Callable[[], bytes]
    error: str | None = None


def iter_inputs(sources: list[Path]) -> Iterator[InputItem]:
    for src in sources:
        if src.is_dir():
            for path in sorted(p for p in src.rglob("*") if p.is_file()):
                yield from _file(path)
        elif src.is_file():
            yield from _file(src)
        else:
            yield InputItem(str(src), _missing(src), error=f"{src}: no such file or folder")


def _missing(src: Path) -> Callable[[], bytes]:
    def read() -> bytes:
        raise InvalidInput(f"{src}: no such file or folder")

    return read


def _file(path: Path) -> Iterator[InputItem]:
    if zipfile.is_zipfile(path) and not _looks_dicom(path):
        yield from _zip(path)
    else:
        yield InputItem(str(path), path.read_bytes)


def _looks_dicom(path: Path) -> bool:
    with path.open("rb") as fh:
        head = fh.read(132)
    return len(head) == 132 and head[128:132] == b"DICM"


def check_member_name(name: str) -> None:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or (p.parts and ":" in p.parts[0]):
        raise InvalidInput(f"zip member {name!r} has an unsafe path (absolute or '..'): refused")


def _zip(path: Path) -> Iterator[InputItem]:
    try:
        zf = zipfile.ZipFile(path)
        infos = zf.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        yield InputItem(str(path), _fail(f"{path}: not a readable zip: {exc}"), error=str(exc))
        return
    if len(infos) > MAX_MEMBERS:
        msg = f"{path}: {len(infos)} members; the limit is {MAX_MEMBERS}"
        yield InputItem(str(path), _fail(msg), error=msg)
        return
    total = sum(i.file_size for i in infos)
    if total > MAX_ARCHIVE_BYTES:
        msg = f"{path}: would expand to {total} bytes (limit {MAX_ARCHIVE_BYTES}): refused"
        yield InputItem(str(path), _fail(msg), error=msg)
        return
    for info in infos:
        if info.is_dir():
            continue
        label = f"{path}!{info.filename}"
        yield InputItem(label, _member_reader(zf, info, label))


def _fail(msg: str) -> Callable[[], bytes]:
    def read() -> bytes:
        raise InvalidInput(msg)

    return read


def _member_reader(zf: zipfile.ZipFile, info: zipfile.ZipInfo, label: str) -> Callable[[], bytes]:
    def read() -> bytes:
        check_member_name(info.filename)
        if info.file_size > MAX_MEMBER_BYTES:
            raise TooLarge(
                f"{label}: {info.file_size} bytes uncompressed (limit {MAX_MEMBER_BYTES})"
            )
        if info.file_size > (1 << 20) and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise InvalidInput(
                f"{label}: compression ratio {info.file_size // max(info.compress_size, 1)}:1 "
                "looks like a zip bomb: refused"
            )
        try:
            with zf.open(info) as fh:
                data = fh.read(info.file_size + 1)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise InvalidInput(f"{label}: cannot read zip member: {exc}") from exc
        except NotImplementedError as exc:
            raise InvalidInput(f"{label}: unsupported zip compression: {exc}") from exc
        if len(data) > info.file_size:
            raise InvalidInput(f"{label}: member is larger than its header says: refused")
        return data

    return read
