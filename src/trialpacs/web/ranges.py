"""Single byte-range requests (RFC 9110 section 14) for whole bodies held in memory.

Browsers ask a ``<video>``'s source in ranges (``bytes=0-`` first, then from
wherever the reviewer seeks), and only seek before the whole file is loaded
when the server answers ranges. Both routes that serve a record's bytes (the
video ``/rendered`` and the original-format download) answer through
:func:`ranged_response` after their access checks, so a range is just a part
of a response the caller was already allowed to get.

Decisions (each allowed by RFC 9110):

* one range → 206 with ``Content-Range``; ``Accept-Ranges: bytes`` on 200 and 206;
* an unsatisfiable range (starts at or past the end, ``-0``) → 416 with
  ``Content-Range: bytes */SIZE``;
* several ranges → the whole body (200): a server MAY ignore ``Range``
  (14.2), and no media player asks for several at once;
* a malformed header or another unit → ignored (200), as 14.2 says;
* ``If-Range`` that is not our ETag (a strong validator of the body) or is
  a date (we send no Last-Modified) → the whole body, so a client never
  stitches parts of two different bodies together.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import BinaryIO

from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import iterate_in_threadpool

_SPEC = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


@dataclass(frozen=True)
class ByteRange:
    """``first`` to ``last`` inclusive, as in ``Content-Range``."""

    first: int
    last: int

    @property
    def length(self) -> int:
        return self.last - self.first + 1


class RangeNotSatisfiable(Exception):
    """The range lies outside the body (answered with 416)."""


def select_range(header: str | None, size: int) -> ByteRange | None:
    """The one byte range to send of a body of ``size`` bytes; None: send it all.

    Raises :class:`RangeNotSatisfiable` for a single well-formed range that
    selects nothing of the body.
    """
    if not header:
        return None
    unit, sep, specs = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    parts = [p for p in specs.split(",") if p.strip()]
    if len(parts) != 1:
        return None  # none, or several: the whole body
    m = _SPEC.match(parts[0])
    if m is None or (not m.group(1) and not m.group(2)):
        return None
    first_s, last_s = m.groups()
    if not first_s:  # suffix: the last N bytes
        suffix = int(last_s)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable
        return ByteRange(max(0, size - suffix), size - 1)
    first = int(first_s)
    last = int(last_s) if last_s else size - 1
    if last_s and last < first:
        return None  # invalid range-spec: ignored
    if first >= size:
        raise RangeNotSatisfiable
    return ByteRange(first, min(last, size - 1))


def etag_of(body: bytes) -> str:
    """A strong validator of the body (same bytes, same tag)."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


@dataclass(frozen=True)
class Plan:
    """What to answer: 200 (part None), 206 (the part) or 416, and the headers for it."""

    status: int
    part: ByteRange | None
    headers: dict[str, str]


def plan(request: Request, size: int, etag: str, headers: Mapping[str, str] | None) -> Plan:
    out = {**(headers or {}), "Accept-Ranges": "bytes", "ETag": etag}
    wanted = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if wanted and if_range is not None and if_range.strip() != etag:
        wanted = None
    try:
        part = select_range(wanted, size)
    except RangeNotSatisfiable:
        out["Content-Range"] = f"bytes */{size}"
        return Plan(416, None, out)
    if part is None:
        return Plan(200, None, out)
    out["Content-Range"] = f"bytes {part.first}-{part.last}/{size}"
    return Plan(206, part, out)


def ranged_response(
    request: Request,
    body: bytes,
    media_type: str,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """200 with the body, 206 with the one range asked for, or 416."""
    p = plan(request, len(body), etag_of(body), headers)
    if p.status == 416:
        return Response(b"", status_code=416, headers=p.headers)
    if p.part is None:
        return Response(body, media_type=media_type, headers=p.headers)
    return Response(
        body[p.part.first : p.part.last + 1],
        status_code=206,
        media_type=media_type,
        headers=p.headers,
    )


FILE_CHUNK = 1 << 20


def ranged_file_response(
    request: Request,
    fh: BinaryIO,
    size: int,
    media_type: str,
    etag: str,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """As :func:`ranged_response`, for an open file: only the part asked for is read,
    in chunks, off the event loop; the file is closed when the body is sent."""
    p = plan(request, size, etag, headers)
    if p.status == 416:
        fh.close()
        return Response(b"", status_code=416, headers=p.headers)
    first, last = (p.part.first, p.part.last) if p.part else (0, size - 1)

    def chunks() -> Iterator[bytes]:
        try:
            fh.seek(first)
            left = last - first + 1
            while left > 0:
                data = fh.read(min(FILE_CHUNK, left))
                if not data:
                    break
                left -= len(data)
                yield data
        finally:
            fh.close()

    return StreamingResponse(
        iterate_in_threadpool(chunks()),
        status_code=p.status,
        media_type=media_type,
        headers={**p.headers, "Content-Length": str(max(0, last - first + 1))},
    )
