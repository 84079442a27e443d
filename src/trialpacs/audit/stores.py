"""Audit entries for stored instances, appended in the index transaction that stores them.

Every store path (STOW-RS, DIMSE C-STORE through the group committer, import,
the pipeline's publication) ends in ``ingest.store.store_parsed_many``; it
calls :func:`append_stored` inside its write transaction, so instances and
their entries commit together and auditing costs no extra fsync. One entry
per (caller, study) of a batch, naming the series and, for a single
instance, the SOP Instance UID; the caller's template (actor, roles,
address, agent, action) comes from the adapter, ``store`` with no actor when
the adapter passed none.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from sqlalchemy.orm import Session

from trialpacs.audit.chain import AuditEvent, append_many

DEFAULT = AuditEvent(action="store")
MAX_LISTED = 100


@dataclass(frozen=True)
class Stored:
    study: str
    series: str
    sop: str
    trial: str
    site: str
    collection: str
    status: str  # stored | replaced


def append_stored(session: Session, items: Iterable[tuple[AuditEvent | None, Stored]]) -> int:
    """Append the entries; returns how many were written."""
    groups: dict[tuple[int, str], tuple[AuditEvent, list[Stored]]] = {}
    for template, item in items:
        tpl = template or DEFAULT
        groups.setdefault((id(tpl), item.study), (tpl, []))[1].append(item)
    events: list[AuditEvent] = []
    for tpl, group in groups.values():
        first = group[0]
        series = sorted({g.series for g in group})
        detail = {
            **tpl.detail,
            "instances": len(group),
            "collection": first.collection,
            "status": sorted({g.status for g in group}),
        }
        if len(series) > 1:
            detail["series_uids"] = series[:MAX_LISTED]
        if len(group) > 1:
            detail["sop_uids"] = [g.sop for g in group][:MAX_LISTED]
        events.append(
            replace(
                tpl,
                study=first.study,
                series=series[0] if len(series) == 1 else "",
                sop=first.sop if len(group) == 1 else "",
                trial=first.trial or tpl.trial,
                site=first.site or tpl.site,
                detail=detail,
            )
        )
    append_many(session, events)
    return len(events)
