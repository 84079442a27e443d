"""Content-Type and Accept parsing for DICOMweb (PS3.18 8.7)."""

from __future__ import annotations

from dataclasses import dataclass, field

from trialpacs.errors import InvalidInput


@dataclass(frozen=True)
class MediaRange:
    """One alternative of an Accept header, or a Content-Type."""

    type: str  # e.g. multipart/related
    params: dict[str, str] = field(default_factory=dict)

    @property
    def q(self) -> float:
        try:
            return float(self.params.get("q", "1"))
        except ValueError:
            return 0.0

    @property
    def part_type(self) -> str | None:
        """The ``type`` parameter of multipart/related, lower-cased."""
        value = self.params.get("type")
        return value.lower() if value else None

    @property
    def transfer_syntax(self) -> str | None:
        return self.params.get("transfer-syntax")


def _split_params(text: str) -> list[str]:
    out: list[str] = []
    cur: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == ";" and not quoted:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


def parse_media_type(text: str) -> MediaRange:
    pieces = _split_params(text)
    mtype = pieces[0].strip().lower()
    params: dict[str, str] = {}
    for piece in pieces[1:]:
        if "=" not in piece:
            continue
        key, value = piece.split("=", 1)
        params[key.strip().lower()] = value.strip().strip('"')
    return MediaRange(mtype, params)


def parse_accept(header: str | None) -> list[MediaRange]:
    """Alternatives in order of preference (q, then position)."""
    if not header or not header.strip():
        return [MediaRange("*/*")]
    alternatives: list[str] = []
    cur: list[str] = []
    quoted = False
    for ch in header:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            alternatives.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    alternatives.append("".join(cur))
    ranges = [parse_media_type(a) for a in alternatives if a.strip()]
    ranges = [r for r in ranges if r.q > 0]
    if not ranges:
        raise InvalidInput("Accept header allows no media type")
    return sorted(ranges, key=lambda r: -r.q)


def matches(range_type: str, offered: str) -> bool:
    if range_type in ("*/*", offered):
        return True
    if range_type.endswith("/*"):
        return offered.startswith(range_type[:-1])
    return False
