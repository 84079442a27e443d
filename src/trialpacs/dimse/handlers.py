"""pynetdicom event handlers: one per service, each a thin adapter.

A handler turns the DIMSE request into plain values, calls a domain function
and turns the outcome (or the error) into a status. Every failure a peer can
cause becomes a failure status with an Error Comment naming the problem; no
exception escapes into pynetdicom, which would answer with a bare status.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.dimse_primitives import C_STORE, N_ACTION
from pynetdicom.events import Event

from trialpacs.access.visibility import study_condition
from trialpacs.archive import Archive
from trialpacs.audit.chain import AuditEvent
from trialpacs.dicom.parse import parse_part10
from trialpacs.dimse import auditing, commitment, peers, query, remote_aes, retrieve
from trialpacs.dimse.part10 import build_part10
from trialpacs.errors import Conflict, InvalidInput, TrialpacsError
from trialpacs.ingest.store import store_parsed

log = logging.getLogger("trialpacs.dimse")

# Status codes (PS3.4 B.2.3, C.4.1.1.4, C.4.2.1.5, C.4.3.1.4; PS3.7 C)
SUCCESS = 0x0000
PENDING = 0xFF00
CANCEL = 0xFE00
STORE_OUT_OF_RESOURCES = 0xA700
STORE_CLASS_MISMATCH = 0xA900
STORE_CANNOT_UNDERSTAND = 0xC000
STORE_CONFLICT = 0xC001  # in the "cannot understand" range; comment says why
QR_IDENTIFIER_MISMATCH = 0xA900
QR_UNABLE_TO_PROCESS = 0xC000
MOVE_UNKNOWN_DESTINATION = 0xA801
MOVE_SUBOP_FAILED = 0xA702  # out of resources: unable to perform sub-operations
N_PROCESSING_FAILURE = 0x0110
N_INVALID_ARGUMENT = 0x0115
MAX_COMMENT = 64  # Error Comment is LO


@dataclass
class DimseContext:
    """What every handler needs; built once by :func:`trialpacs.dimse.server.start`."""

    archive: Archive
    ae_title: str
    commitment_reports: list[threading.Thread] = field(default_factory=list)
    report_sender: Any = None  # callable(KnownAE, CommitmentResult) -> None


def status(code: int, comment: str | None = None) -> Dataset:
    ds = Dataset()
    ds.Status = code
    if comment:
        ds.ErrorComment = _comment(comment)
    return ds


_UID_RE = re.compile(r"\b\d+(?:\.\d+){3,}\b")


def _comment(text: str) -> str:
    """Error Comment is 64 characters: UIDs go first (the peer knows which
    instance it sent), the full message stays in our log."""
    text = " ".join(text.replace("\\", "/").split())
    if len(text) > MAX_COMMENT:
        text = _UID_RE.sub("", text).replace("  ", " ")
    text = text.encode("ascii", "replace").decode("ascii")
    return text if len(text) <= MAX_COMMENT else text[: MAX_COMMENT - 3] + "..."


def _peer(event: Event) -> str:
    info = event.assoc.requestor
    return f"{(info.ae_title or '').strip()}@{info.address}"


# -- connection and association --------------------------------------------------


DUL_POLL_SECONDS = 0.0002


def handle_conn_open(event: Event, *_: Any) -> None:
    """Nagle's algorithm makes every request/response pair wait for a delayed
    ACK (40 ms on Linux); small DIMSE messages must leave at once.

    pynetdicom's DUL thread polls its queues, sleeping 1 ms between empty
    polls; at one C-STORE per round trip that sleep was a third of the
    per-instance time, so it polls faster while an association is open.
    """
    event.assoc.dul._run_loop_delay = DUL_POLL_SECONDS
    sock = getattr(event.assoc.dul.socket, "socket", None)
    if sock is not None:
        with contextlib.suppress(OSError):  # not a TCP socket
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def handle_requested(event: Event, ctx: DimseContext) -> None:
    """Admit only AE titles in the known-AE table, from their configured host."""
    if ctx.archive.settings.dicom_accept_unknown:
        return
    primitive = event.assoc.requestor.primitive
    assert primitive is not None
    calling = str(primitive.calling_ae_title or "").strip()
    address = str(event.assoc.requestor.address)
    known = remote_aes.find(ctx.archive.db, calling) if calling else None
    if known is not None and remote_aes.host_matches(known.host, address):
        return
    reason = "unknown calling AE title" if known is None else "calling host not allowed"
    log.warning("rejecting association from %s@%s: %s", calling, address, reason)
    auditing.write(
        ctx.archive.db, auditing.peer_event(event, "A-ASSOCIATE", "denied", reason=reason)
    )
    # Rejected permanent, by the service user, calling AE title not recognised.
    event.assoc.acse.send_reject(0x01, 0x01, 0x03)
    # Wait for the reject PDU to leave (the DUL returns to idle once the peer
    # closes); returning at once would let pynetdicom close the socket first
    # and the peer would see an abort instead of the reason.
    event.assoc.kill()


# -- verification ----------------------------------------------------------------


def handle_echo(event: Event, ctx: DimseContext) -> int:
    auditing.write(ctx.archive.db, auditing.peer_event(event, "C-ECHO"))
    return SUCCESS


# -- storage ---------------------------------------------------------------------


def handle_store(event: Event, ctx: DimseContext) -> Dataset | int:
    """Acknowledge only after store_parsed returned: durable and indexed."""
    req = cast(C_STORE, event.request)
    ts = str(event.context.transfer_syntax)
    raw = req.DataSet.getvalue() if req.DataSet is not None else b""
    sop_class = str(req.AffectedSOPClassUID or "")
    sop_uid = str(req.AffectedSOPInstanceUID or "")
    try:
        data = build_part10(
            raw,
            sop_class_uid=sop_class,
            sop_instance_uid=sop_uid,
            transfer_syntax=ts,
        )
        parsed = parse_part10(
            data,
            max_bytes=ctx.archive.settings.max_instance_bytes,
            max_frames=ctx.archive.settings.max_frames,
        )
        if parsed.sop_class_uid != sop_class:
            return status(
                STORE_CLASS_MISMATCH,
                f"SOPClassUID {parsed.sop_class_uid} differs from the request's {sop_class}",
            )
        # The success entry is written by the ingest path with the instance.
        _store(ctx.archive, parsed, _placement(event, ctx), auditing.peer_event(event, "C-STORE"))
    except InvalidInput as exc:
        log.info("C-STORE %s from %s refused: %s", sop_uid, _peer(event), exc)
        _store_refused(event, ctx, sop_uid, str(exc))
        return status(STORE_CANNOT_UNDERSTAND, str(exc))
    except Conflict as exc:
        log.info("C-STORE %s from %s refused: %s", sop_uid, _peer(event), exc)
        _store_refused(event, ctx, sop_uid, str(exc))
        return status(STORE_CONFLICT, str(exc))
    except Exception as exc:
        log.exception("C-STORE %s from %s failed", sop_uid, _peer(event))
        _store_refused(event, ctx, sop_uid, type(exc).__name__, "error")
        return status(STORE_OUT_OF_RESOURCES, f"cannot store: {type(exc).__name__}")
    return SUCCESS


def _store_refused(
    event: Event, ctx: DimseContext, sop_uid: str, reason: str, outcome: str = "failure"
) -> None:
    ev = auditing.peer_event(event, "C-STORE", outcome, sop=sop_uid[:64], reason=reason[:500])
    auditing.write(ctx.archive.db, ev)


def _placement(event: Event, ctx: DimseContext) -> Any:
    """Trial routing by called AE title and the caller's site (trialpacs.trials.routing)."""
    from trialpacs.trials.routing import dimse_placement

    requestor = event.assoc.requestor
    called = requestor.primitive.called_ae_title if requestor.primitive else None
    return dimse_placement(
        ctx.archive,
        str(called or ctx.ae_title).strip(),
        str(requestor.ae_title or ""),
        str(requestor.address or ""),
    )


def _series_complete(ctx: DimseContext, sop_uids: list[str]) -> None:
    """A commitment request means the sender is done: start the pipeline at once."""
    if not sop_uids:
        return
    from trialpacs.pipeline.scheduler import request_now

    try:
        request_now(ctx.archive, sop_uids)
    except Exception:  # the settle interval will still pick the series up
        log.exception("cannot queue committed series for the pipeline")


def _store(archive: Archive, parsed: Any, placement: Any, audit: Any) -> None:
    """Through the group committer when the store path has one: concurrent
    associations then share one fsync and one index transaction."""
    try:
        from trialpacs.ingest.commit import committer_for  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        store_parsed(archive, parsed, placement=placement, audit=audit)
    else:
        committer_for(archive).store(parsed, placement, audit=audit)


# -- query -----------------------------------------------------------------------


def handle_find(event: Event, ctx: DimseContext) -> Iterator[tuple[int | Dataset, Dataset | None]]:
    """Every request is audited with the studies it answered (who saw which study)."""
    ev = auditing.peer_event(event, "C-FIND")
    try:
        yield from _find(event, ctx, ev)
    finally:
        auditing.write(ctx.archive.db, ev)


def _find(
    event: Event, ctx: DimseContext, ev: AuditEvent
) -> Iterator[tuple[int | Dataset, Dataset | None]]:
    try:
        ident = query.Identifier.from_dataset(event.identifier)
    except (InvalidInput, ValueError) as exc:
        ev.outcome, ev.reason = "failure", str(exc)[:500]
        yield status(QR_IDENTIFIER_MISMATCH, str(exc)), None
        return
    except Exception as exc:
        ev.outcome, ev.reason = "failure", f"bad identifier: {exc}"[:500]
        yield status(QR_IDENTIFIER_MISMATCH, f"bad identifier: {exc}"), None
        return
    ev.detail = {"level": ident.level, "keys": {k: v for k, v in ident.keys.items() if v}}
    try:
        visible = _visible(event, ctx)
        with ctx.archive.db.read() as session:
            matches = list(
                query.find(
                    session,
                    ident,
                    max_results=ctx.archive.settings.qido_max_results,
                    visible=visible,
                )
            )
    except InvalidInput as exc:
        ev.outcome, ev.reason = "failure", str(exc)[:500]
        yield status(QR_IDENTIFIER_MISMATCH, str(exc)), None
        return
    except Exception as exc:
        log.exception("C-FIND from %s failed", _peer(event))
        ev.outcome, ev.reason = "error", type(exc).__name__
        yield status(QR_UNABLE_TO_PROCESS, type(exc).__name__), None
        return
    auditing.with_studies(
        ev, (str(ds.get("StudyInstanceUID", "") or "") for ds in matches), matches=len(matches)
    )
    for ds in matches:
        if event.is_cancelled:
            ev.reason = "cancelled"
            yield CANCEL, None
            return
        yield PENDING, ds
    yield SUCCESS, None


# -- retrieve --------------------------------------------------------------------


def _visible(event: Event, ctx: DimseContext) -> Any:
    """The calling AE's condition from the policy (trialpacs.dimse.peers)."""
    principal = peers.principal_for(
        ctx.archive.db, ctx.archive.settings, str(event.assoc.requestor.ae_title or "")
    )
    return study_condition(principal)


def _targets(event: Event, ctx: DimseContext) -> list[Any]:
    ident = query.Identifier.from_dataset(event.identifier)
    visible = _visible(event, ctx)
    with ctx.archive.db.read() as session:
        return query.retrieve_targets(session, ident, visible)


def handle_move(event: Event, ctx: DimseContext) -> Iterator[Any]:
    """Send only to destinations in the known-AE table, whatever the caller says."""
    destination = str(event.move_destination or "").strip()
    ev = auditing.peer_event(event, "C-MOVE", object=f"destination={destination}"[:256])
    try:
        yield from _move(event, ctx, ev, destination)
    finally:
        auditing.write(ctx.archive.db, ev)


def _move(event: Event, ctx: DimseContext, ev: AuditEvent, destination: str) -> Iterator[Any]:
    known = remote_aes.find(ctx.archive.db, destination) if destination else None
    if known is None:
        log.warning("C-MOVE from %s to unknown destination %r", _peer(event), destination)
        ev.outcome, ev.reason = "failure", "unknown move destination"
        yield None, None
        return
    try:
        refs = _targets(event, ctx)
    except (InvalidInput, ValueError) as exc:
        ev.outcome, ev.reason = "failure", str(exc)[:500]
        yield known.host, known.port
        yield status(QR_IDENTIFIER_MISMATCH, str(exc)), None
        return
    auditing.with_studies(ev, (r.study_uid for r in refs), instances=len(refs))
    accepted: dict[str, set[str]] = {}

    def record(sub_event: Event) -> None:
        accepted.update(retrieve.accepted_for_sending(sub_event.assoc.accepted_contexts))

    yield (
        known.host,
        known.port,
        {
            "ae_title": destination,
            "contexts": retrieve.move_contexts(refs),
            "evt_handlers": [
                (evt.EVT_CONN_OPEN, handle_conn_open),
                (evt.EVT_ACCEPTED, record),
            ],
        },
    )
    yield len(refs)
    yield from _send_each(event, ctx, refs, lambda: accepted, ev)


def handle_get(event: Event, ctx: DimseContext) -> Iterator[Any]:
    ev = auditing.peer_event(event, "C-GET")
    try:
        yield from _get(event, ctx, ev)
    finally:
        auditing.write(ctx.archive.db, ev)


def _get(event: Event, ctx: DimseContext, ev: AuditEvent) -> Iterator[Any]:
    try:
        refs = _targets(event, ctx)
    except (InvalidInput, ValueError) as exc:
        ev.outcome, ev.reason = "failure", str(exc)[:500]
        yield 1
        yield status(QR_IDENTIFIER_MISMATCH, str(exc)), None
        return
    auditing.with_studies(ev, (r.study_uid for r in refs), instances=len(refs))
    yield len(refs)
    accepted = retrieve.accepted_for_sending(event.assoc.accepted_contexts)
    yield from _send_each(event, ctx, refs, lambda: accepted, ev)


def _send_each(
    event: Event, ctx: DimseContext, refs: list[Any], accepted: Any, ev: AuditEvent
) -> Iterator[Any]:
    for ref in refs:
        if event.is_cancelled:
            ev.reason = "cancelled"
            yield CANCEL, None
            return
        try:
            ds = retrieve.load_for_peer(ctx.archive.store, ref, accepted())
        except (TrialpacsError, KeyError, OSError) as exc:
            log.warning("cannot send %s to %s: %s", ref.sop_uid, _peer(event), exc)
            ev.detail["failed"] = int(ev.detail.get("failed", 0)) + 1
            # A non-Dataset pending result counts as a failed sub-operation.
            yield PENDING, ref.sop_uid
            continue
        yield PENDING, ds


# -- storage commitment ----------------------------------------------------------


def handle_n_action(event: Event, ctx: DimseContext) -> tuple[Dataset | int, Dataset | None]:
    """Answer the N-ACTION at once; the result follows as an N-EVENT-REPORT on a
    new association to the caller's address from the known-AE table."""
    ev = auditing.peer_event(event, "N-ACTION")
    try:
        return _n_action(event, ctx, ev)
    finally:
        auditing.write(ctx.archive.db, ev)


def _n_action(
    event: Event, ctx: DimseContext, ev: AuditEvent
) -> tuple[Dataset | int, Dataset | None]:
    req = cast(N_ACTION, event.request)
    ev.outcome = "failure"
    if str(req.RequestedSOPClassUID) != commitment.STORAGE_COMMITMENT_SOP_CLASS:
        ev.reason = "not Storage Commitment Push Model"
        return status(0x0118, "only Storage Commitment Push Model is supported"), None
    if req.ActionTypeID != commitment.REQUEST_ACTION_TYPE:
        ev.reason = "unsupported Action Type ID"
        return status(0x0123, "unsupported Action Type ID"), None
    try:
        transaction, refs = commitment.parse_request(event.action_information)
    except Exception as exc:
        ev.reason = str(exc)[:500]
        return status(N_INVALID_ARGUMENT, str(exc)), None
    ev.object = f"transaction={transaction}"[:256]
    calling = str(event.assoc.requestor.ae_title or "").strip()
    known = remote_aes.find(ctx.archive.db, calling)
    if known is None:
        ev.reason = "calling AE not in the known-AE table"
        return status(
            N_PROCESSING_FAILURE, f"{calling} is not in the known-AE table: no report address"
        ), None
    with ctx.archive.db.read() as session:
        result = commitment.check(session, transaction, refs)
    ev.outcome = "success"
    ev.detail = {
        "requested": len(refs),
        "committed": len(result.committed),
        "failed": len(result.failed),
    }
    _series_complete(ctx, [ref.sop_instance_uid for ref in result.committed])
    thread = threading.Thread(
        target=ctx.report_sender,
        args=(known, result),
        name=f"commitment-{transaction[-12:]}",
        daemon=True,
    )
    ctx.commitment_reports[:] = [t for t in ctx.commitment_reports if t.is_alive()]
    ctx.commitment_reports.append(thread)
    thread.start()
    return SUCCESS, None
