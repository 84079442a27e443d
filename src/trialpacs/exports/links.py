"""Download links: a short-lived signed token for one export, and the package as a
zip streamed from its staging directory.

The token is a JWT signed with the deployment's access-token key
(``trialpacs.access.access_tokens.Signer``), bound to one export ID and the
person who ran it, and it expires after ``DOWNLOAD_MINUTES``; nothing about
it is stored, so it cannot be listed or reused for another export.
The zip is written as it is sent (stored entries, fixed timestamps, data
descriptors), so a package of any size needs no temporary archive.
"""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jwt

from trialpacs.access.access_tokens import ALGORITHM, Signer

DOWNLOAD_MINUTES = 15
_TYP = "export-download"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Link:
    token: str
    expires_in: int


def issue(signer: Signer, export_id: str, subject: str, minutes: int = DOWNLOAD_MINUTES) -> Link:
    found = signer.key()
    assert found is not None
    kid, secret = found
    now = int(time.time())
    claims = {"typ": _TYP, "xid": export_id, "sub": subject, "iat": now, "exp": now + minutes * 60}
    token = jwt.encode(claims, secret, algorithm=ALGORITHM, headers={"kid": kid})
    return Link(token, minutes * 60)


def check(signer: Signer, token: str, export_id: str) -> str | None:
    """The subject the link was issued to, if the token is valid for this export."""
    try:
        header = jwt.get_unverified_header(token)
        found = signer.key(str(header.get("kid", "")) or None)
        if found is None or header.get("alg") != ALGORITHM:
            return None
        claims = jwt.decode(
            token, found[1], algorithms=[ALGORITHM], options={"require": ["exp", "sub", "xid"]}
        )
    except jwt.PyJWTError:
        return None
    if claims.get("typ") != _TYP or claims.get("xid") != export_id:
        return None
    return str(claims["sub"])


class _Sink(io.RawIOBase):
    """A write-only stream that hands what was written to the response."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._pos = 0

    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        chunk = bytes(data)  # type: ignore[call-overload]
        self._chunks.append(chunk)
        self._pos += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._pos

    def drain(self) -> Iterator[bytes]:
        if self._chunks:
            out = b"".join(self._chunks)
            self._chunks.clear()
            yield out


def zip_stream(root: Path, folder: str) -> Iterator[bytes]:
    """The files below ``root`` as a zip (entries under ``folder/``, sorted)."""
    sink = _Sink()
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".part-"))
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for path in files:
            info = zipfile.ZipInfo(f"{folder}/{path.relative_to(root).as_posix()}")
            info.date_time = (1980, 1, 1, 0, 0, 0)
            info.compress_type = zipfile.ZIP_STORED
            size = path.stat().st_size
            with path.open("rb") as src, zf.open(info, "w", force_zip64=size > 1 << 31) as dst:
                for chunk in iter(lambda: src.read(_CHUNK), b""):
                    dst.write(chunk)
                    yield from sink.drain()
            yield from sink.drain()
    yield from sink.drain()
