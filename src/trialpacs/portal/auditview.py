"""The audit trail as a monitor may see it: their trials' entries, filtered.

Which part of the trail a caller reads is the policy's answer
(``other_scopes(principal, "audit")``): an administrator or a global monitor
all of it, ``monitor@T`` the entries naming trial T or a study the index
places in T. Filters are the ones ``trialpacs audit list`` takes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from trialpacs.access.policy import Principal, other_scopes
from trialpacs.audit import exports
from trialpacs.audit.chain import Filter, query
from trialpacs.errors import InvalidInput, NotFound
from trialpacs.index.db import Database

MAX_ENTRIES = 500  # an export holds at most this many (the newest) entries
PAGE_SIZE = 100
FORMATS = ("csv", "json", "fhir", "atna")


def scopes(principal: Principal) -> list[tuple[str | None, str | None]] | None:
    """The (trial, site) slices the caller may read; None: the whole trail."""
    found = other_scopes(principal, "audit")
    if not found:
        raise NotFound("not found")
    if any(s.trial is None and s.site is None for s in found):
        return None
    return [(s.trial, s.site) for s in found]


def entries(db: Database, principal: Principal, flt: Filter) -> list[dict[str, Any]]:
    """Oldest first, at most ``MAX_ENTRIES`` (the newest ones)."""
    _check_dates(flt)
    flt.scopes = scopes(principal)
    flt.newest_first, flt.offset, flt.limit = True, 0, MAX_ENTRIES
    return list(reversed(query(db, flt)))


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


def export(found: list[dict[str, Any]], fmt: str) -> tuple[str, str]:
    """The body and its media type."""
    if fmt == "csv":
        return exports.to_csv(found), "text/csv; charset=utf-8"
    if fmt == "json":
        return exports.to_json(found), "application/json"
    if fmt == "fhir":
        return exports.to_fhir_bundle(found), "application/fhir+json"
    if fmt == "atna":
        return exports.to_atna_xml(found), "application/xml"
    raise InvalidInput(f"format must be one of {', '.join(FORMATS)}")
