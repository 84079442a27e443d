"""Audit entries for DIMSE services: the calling AE is the actor.

One entry per DIMSE request (C-ECHO, C-FIND, C-MOVE, C-GET, N-ACTION) and,
for C-STORE, one per stored study written by the ingest path in the same
index transaction as the instances (so an acknowledged store always has its
entry and costs no extra commit). Failures a peer causes are entries too.
The entry is written after the answer is decided, so the peer never waits
for a second transaction on the success path of a query.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from pynetdicom.events import Event

from trialpacs.audit.chain import AuditEvent, record
from trialpacs.index.db import Database

log = logging.getLogger("trialpacs.dimse")

# One action per DIMSE service the listener answers (tests/audit enumerates them).
ACTIONS = {
    "C-ECHO": "dimse.C-ECHO",
    "C-STORE": "dimse.C-STORE",
    "C-FIND": "dimse.C-FIND",
    "C-MOVE": "dimse.C-MOVE",
    "C-GET": "dimse.C-GET",
    "N-ACTION": "dimse.N-ACTION storage-commitment",
    "A-ASSOCIATE": "dimse.A-ASSOCIATE",
}
MAX_LISTED = 100  # UIDs named in one entry's detail; the count is always exact


def peer_event(event: Event, service: str, outcome: str = "success", **fields: Any) -> AuditEvent:
    """The entry's actor part: calling AE title, its address, and the called AE as agent."""
    requestor = event.assoc.requestor
    primitive = requestor.primitive
    called = str(primitive.called_ae_title or "").strip() if primitive is not None else ""
    # Before acceptance (EVT_REQUESTED) only the A-ASSOCIATE primitive has the title.
    calling = str(
        requestor.ae_title or (primitive.calling_ae_title if primitive is not None else "") or ""
    ).strip()
    return AuditEvent(
        action=ACTIONS[service],
        outcome=outcome,
        actor=f"ae:{calling}",
        address=str(requestor.address or ""),
        agent=f"AE {calling} -> {called}" if called else f"AE {calling}",
        **fields,
    )


def with_studies(ev: AuditEvent, studies: Iterable[str], **detail: Any) -> AuditEvent:
    """Name the studies the request touched: the column for one, the list (capped) for more."""
    uids = sorted({s for s in studies if s})
    if len(uids) == 1:
        ev.study = uids[0]
    ev.detail = {**ev.detail, **detail, "studies": len(uids)}
    if len(uids) > 1:
        ev.detail["study_uids"] = uids[:MAX_LISTED]
    return ev


def write(db: Database, ev: AuditEvent) -> None:
    """Append; an audit failure is logged loudly but never turns into a DIMSE abort."""
    try:
        record(db, ev)
    except Exception:
        log.exception("cannot write the audit entry for %s from %s", ev.action, ev.actor)
