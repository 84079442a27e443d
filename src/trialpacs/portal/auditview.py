"""The audit trail as a monitor may see it: their trials' entries, filtered.

A global auditor (administrator or monitor without a trial) sees every
entry; a monitor of some trials sees only entries recorded against those
trials. Filters are the ones ``trialpacs audit list`` takes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from trialpacs.access.policy import Principal, Resource, decide
from trialpacs.audit import exports
from trialpacs.audit.chain import Filter, query
from trialpacs.errors import InvalidInput, NotFound
from trialpacs.index.db import Database

MAX_ENTRIES = 500
FORMATS = ("csv", "json", "fhir", "atna")


@dataclass(frozen=True)
class AuditScope:
    everything: bool
    trials: tuple[str, ...]


def scope(principal: Principal) -> AuditScope:
    if decide(principal, "audit", Resource("audit")):
        return AuditScope(True, ())
    trials = sorted(
        {
            g.trial
            for g in principal.grants
            if g.trial and decide(principal, "audit", Resource("audit", g.trial))
        }
    )
    if not trials:
        raise NotFound("not found")
    return AuditScope(False, tuple(trials))


def entries(db: Database, principal: Principal, flt: Filter) -> list[dict[str, Any]]:
    """Newest last, at most ``MAX_ENTRIES`` (the newest ones)."""
    allowed = scope(principal)
    for name in ("since", "until"):
        value = getattr(flt, name)
        if value:
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise InvalidInput(
                    f"{name} must be a date or ISO time, not {value[:30]!r}"
                ) from None
    if allowed.everything:
        found = query(db, flt)
    elif flt.trial:
        found = query(db, flt) if flt.trial in allowed.trials else []
    else:
        found = []
        for trial in allowed.trials:
            found.extend(query(db, Filter(**{**flt.__dict__, "trial": trial})))
        found.sort(key=lambda e: int(e["seq"]))
    return found[-MAX_ENTRIES:]


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
