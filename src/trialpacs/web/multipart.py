"""multipart/related bodies (RFC 2387) for STOW-RS requests and WADO-RS responses."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from trialpacs.errors import InvalidInput, TooLarge
from trialpacs.web.mediatypes import parse_media_type


@dataclass(frozen=True, slots=True)
class Part:
    headers: dict[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


def split(body: bytes, boundary: str, max_parts: int | None = None) -> list[Part]:
    """Split a multipart body; raises InvalidInput naming what is malformed.

    ``max_parts`` bounds the work (and the per-part answers) a single request
    can cause: a body of millions of empty parts is refused, not processed.
    """
    if not boundary or len(boundary) > 200:
        raise InvalidInput("multipart boundary is missing or too long")
    if not (boundary.isascii() and boundary.isprintable()):
        # RFC 2046 boundaries are printable ASCII (found by tests/hardening/test_fuzz.py).
        raise InvalidInput("multipart boundary must be printable ASCII")
    delim = b"--" + boundary.encode("latin-1")
    start = body.find(delim)
    if start < 0:
        raise InvalidInput(f"multipart body has no boundary {boundary!r}")
    parts: list[Part] = []
    pos = start + len(delim)
    while True:
        if body[pos : pos + 2] == b"--":
            return parts
        # Skip the line break after the boundary.
        if body[pos : pos + 2] == b"\r\n":
            pos += 2
        elif body[pos : pos + 1] == b"\n":
            pos += 1
        nxt = body.find(b"\r\n" + delim, pos)
        crlf = 2
        if nxt < 0:
            nxt = body.find(b"\n" + delim, pos)
            crlf = 1
        if nxt < 0:
            raise InvalidInput("multipart body is truncated: no closing boundary")
        if max_parts is not None and len(parts) >= max_parts:
            raise TooLarge(f"multipart body has more than {max_parts} parts (max_multipart_parts)")
        parts.append(_part(body[pos:nxt]))
        pos = nxt + crlf + len(delim)


def _part(chunk: bytes) -> Part:
    sep = chunk.find(b"\r\n\r\n")
    size = 4
    if sep < 0:
        sep = chunk.find(b"\n\n")
        size = 2
    if sep < 0:
        return Part({}, chunk)
    headers: dict[str, str] = {}
    for line in chunk[:sep].decode("latin-1").splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            headers[key.strip().lower()] = value.strip()
    return Part(headers, chunk[sep + size :])


def boundary_of(content_type: str) -> str:
    mr = parse_media_type(content_type)
    boundary = mr.params.get("boundary")
    if not boundary:
        raise InvalidInput("multipart/related request without a boundary parameter")
    return boundary


def new_boundary() -> str:
    return "trialpacs-" + secrets.token_hex(12)


def content_type(boundary: str, part_type: str, transfer_syntax: str | None = None) -> str:
    value = f'multipart/related; type="{part_type}"; boundary={boundary}'
    if transfer_syntax:
        value += f"; transfer-syntax={transfer_syntax}"
    return value


def stream(parts: Iterable[tuple[str, bytes]], boundary: str) -> Iterator[bytes]:
    """Yield a multipart body part by part, so large studies are not held in memory."""
    delim = b"--" + boundary.encode()
    for ctype, body in parts:
        yield delim + b"\r\nContent-Type: " + ctype.encode() + b"\r\n\r\n"
        yield body
        yield b"\r\n"
    yield delim + b"--\r\n"
