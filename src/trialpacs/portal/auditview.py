"""The audit trail as a monitor may see it: their trials' entries, filtered.

Which part of the trail a caller reads is the policy's answer
(``other_scopes(principal, "audit")``): an administrator or a global monitor
all of it, ``monitor@T`` the entries naming trial T or a study the index
places in T. Filters are the ones ``trialpacs audit list`` takes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from trialpacs.access.policy import Principal, other_scopes
from trialpacs.audit import exports
from trialpacs.audit.chain import Filter, query
from trialpacs.errors import InvalidInput, NotFound
from trialpacs.index.db import Database

MAX_ENTRIES = 500  # the largest page a caller may ask for on screen
PAGE_SIZE = 100
EXPORT_PAGE = 1000  # entries read per query while an export streams
FORMATS = ("csv", "json", "fhir", "atna")


def scopes(principal: Principal) -> list[tuple[str | None, str | None]] | None:
    """The (trial, site) slices the caller may read; None: the whole trail."""
    found = other_scopes(principal, "audit")
    if not found:
        raise NotFound("not found")
    if any(s.trial is None and s.site is None for s in found):
        return None
    return [(s.trial, s.site) for s in found]


def export_pages(db: Database, principal: Principal, flt: Filter) -> Iterator[list[dict[str, Any]]]:
    """Every entry of the caller's slice that matches, oldest first, a page at a time.

    A monitor's export is evidence: it holds the whole matching trail, not the
    newest few hundred entries, and streams so a long trail never sits in memory.
    The caller's scopes and the dates are checked before the first page, so a
    refusal is an error response rather than a truncated download. Entries
    appended while the export streams come after the last one read, so the
    offsets stay valid.
    """
    _check_dates(flt)
    flt.scopes = scopes(principal)
    flt.newest_first = False

    def pages() -> Iterator[list[dict[str, Any]]]:
        offset = 0
        while True:
            found = query(db, replace(flt, offset=offset, limit=EXPORT_PAGE))
            if not found:
                return
            yield found
            offset += len(found)

    return pages()


@dataclass(frozen=True)
class AuditPage:
    entries: list[dict[str, Any]]  # newest first
    offset: int
    limit: int
    more: bool  # older entries follow


def page(db: Database, principal: Principal, flt: Filter, offset: int, limit: int) -> AuditPage:
    """One page of the caller's slice, newest first; ``offset`` counts back from the newest."""
    if offset < 0:
        raise InvalidInput("offset must not be negative")
    if not 1 <= limit <= MAX_ENTRIES:
        raise InvalidInput(f"limit must be between 1 and {MAX_ENTRIES}")
    _check_dates(flt)
    flt.scopes = scopes(principal)
    flt.newest_first, flt.offset, flt.limit = True, offset, limit + 1
    found = query(db, flt)
    return AuditPage(found[:limit], offset, limit, len(found) > limit)


def _check_dates(flt: Filter) -> None:
    for name in ("since", "until"):
        value = getattr(flt, name)
        if value:
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                message = f"{name} must be a date or ISO time, not {value[:30]!r}"
                raise InvalidInput(message) from None


def export_media_type(fmt: str) -> str:
    """The media type of ``fmt``; an unknown format is the caller's error."""
    if fmt not in FORMATS:
        raise InvalidInput(f"format must be one of {', '.join(FORMATS)}")
    return exports.MEDIA_TYPES[fmt]
