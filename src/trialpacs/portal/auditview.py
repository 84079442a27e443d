"""The audit trail as a monitor may see it: their trials' entries, filtered.

Which part of the trail a caller reads is the policy's answer
(``other_scopes(principal, "audit")``): an administrator or a global monitor
all of it, ``monitor@T`` the entries naming trial T or a study the index
places in T. Filters are the ones ``trialpacs audit list`` takes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from trialpacs.access.policy import Principal, other_scopes
from trialpacs.audit import exports
from trialpacs.audit.chain import Filter, query
from trialpacs.errors import InvalidInput, NotFound
from trialpacs.index.db import Database

MAX_ENTRIES = 500
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
    for name in ("since", "until"):
        value = getattr(flt, name)
        if value:
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                message = f"{name} must be a date or ISO time, not {value[:30]!r}"
                raise InvalidInput(message) from None
    flt.scopes = scopes(principal)
    return query(db, flt)[-MAX_ENTRIES:]


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
