"""Outgoing associations: echo, send files by hand, storage commitment reports.

Files are sent as stored on disk (pynetdicom streams them without decoding)
whenever the peer accepts their transfer syntax, so a site pushing a study by
hand gets byte-identical copies on the other side.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread
from pydicom.errors import InvalidDicomError
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, _config, build_role, evt
from pynetdicom.association import Association
from pynetdicom.events import Event
from pynetdicom.presentation import PresentationContext, build_context
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from trialpacs.dimse import commitment
from trialpacs.dimse.remote_aes import KnownAE
from trialpacs.errors import InvalidInput

log = logging.getLogger("trialpacs.dimse")

UNCOMPRESSED = [str(ExplicitVRLittleEndian), str(ImplicitVRLittleEndian)]
MAX_CONTEXTS = 128


class PeerError(Exception):
    """The peer could not be reached or refused the association."""


def _nodelay(event: Event) -> None:
    sock = getattr(event.assoc.dul.socket, "socket", None)
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


NODELAY_HANDLERS = [(evt.EVT_CONN_OPEN, _nodelay)]


def _associate(ae: AE, host: str, port: int, title: str, **kwargs: object) -> Association:
    assoc = ae.associate(host, port, ae_title=title, evt_handlers=NODELAY_HANDLERS, **kwargs)  # type: ignore[arg-type]
    if not assoc.is_established:
        if assoc.is_rejected:
            raise PeerError(f"{title}@{host}:{port} rejected the association")
        raise PeerError(f"cannot associate with {title}@{host}:{port}")
    return assoc


def _tls_args(tls: ssl.SSLContext | None, host: str) -> dict[str, object]:
    return {} if tls is None else {"tls_args": (tls, host)}


def echo(
    our_title: str,
    title: str,
    host: str,
    port: int,
    timeout: float = 10,
    tls: ssl.SSLContext | None = None,
) -> int:
    """C-ECHO; returns the status (0 on success), raises PeerError when unreachable.

    With ``tls`` the association runs over DICOM TLS (PS3.15 Annex B).
    """
    ae = AE(ae_title=our_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.add_requested_context(Verification)
    assoc = _associate(ae, host, port, title, **_tls_args(tls, host))
    try:
        rsp = assoc.send_c_echo()
        if "Status" not in rsp:
            raise PeerError("no C-ECHO response (timeout or abort)")
        return int(rsp.Status)
    finally:
        assoc.release()


@dataclass
class FileInfo:
    path: Path
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax: str


@dataclass
class SendReport:
    sent: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)


@dataclass
class Collected:
    files: list[FileInfo] = field(default_factory=list)
    refused: list[tuple[Path, str]] = field(default_factory=list)  # named, not DICOM
    ignored: int = 0  # found in a folder, not DICOM (READMEs, DICOMDIR siblings)


def collect_files(paths: Iterable[Path]) -> Collected:
    """Readable DICOM files under ``paths``; files named explicitly that are not
    DICOM are refused with the reason, others found in folders are only counted."""
    out = Collected()
    for path, named in _walk(paths):
        try:
            ds = dcmread(
                path,
                stop_before_pixels=True,
                specific_tags=["SOPClassUID", "SOPInstanceUID"],
            )
            out.files.append(
                FileInfo(
                    path,
                    str(ds.file_meta.MediaStorageSOPClassUID or ds.SOPClassUID),
                    str(ds.file_meta.MediaStorageSOPInstanceUID or ds.SOPInstanceUID),
                    str(ds.file_meta.TransferSyntaxUID),
                )
            )
        except (InvalidDicomError, AttributeError, OSError, ValueError) as exc:
            if named:
                out.refused.append((path, f"not a DICOM Part 10 file: {exc}"))
            else:
                out.ignored += 1
    return out


def _walk(paths: Iterable[Path]) -> Iterator[tuple[Path, bool]]:
    for path in paths:
        if path.is_dir():
            yield from ((p, False) for p in sorted(path.rglob("*")) if p.is_file())
        elif path.is_file():
            yield path, True
        else:
            raise InvalidInput(f"{path} does not exist")


def _groups(files: list[FileInfo]) -> Iterator[tuple[list[PresentationContext], list[FileInfo]]]:
    """Split files so each association needs at most 128 presentation contexts."""
    files = sorted(files, key=lambda f: (f.sop_class_uid, f.transfer_syntax))
    contexts: list[PresentationContext] = []
    seen: set[tuple[str, str]] = set()
    group: list[FileInfo] = []
    for info in files:
        needed = []
        if (info.sop_class_uid, info.transfer_syntax) not in seen:
            needed.append((info.sop_class_uid, info.transfer_syntax))
        if (info.sop_class_uid, "*") not in seen:
            needed.append((info.sop_class_uid, "*"))
        if len(contexts) + len(needed) > MAX_CONTEXTS:
            yield contexts, group
            contexts, seen, group = [], set(), []
            needed = [(info.sop_class_uid, info.transfer_syntax), (info.sop_class_uid, "*")]
        for sop_class, ts in needed:
            seen.add((sop_class, ts))
            # One context per stored syntax, so every file can go as it is on
            # disk; the uncompressed fallback is for peers that refuse it.
            contexts.append(build_context(sop_class, UNCOMPRESSED if ts == "*" else [ts]))
        group.append(info)
    if group:
        yield contexts, group


def send(
    our_title: str,
    title: str,
    host: str,
    port: int,
    files: list[FileInfo],
    progress: Callable[[FileInfo, str | None], None] | None = None,
    max_pdu: int = 0,
    tls: ssl.SSLContext | None = None,
) -> SendReport:
    """C-STORE every file; a refused file is reported, never aborts the rest."""
    _config.STORE_SEND_CHUNKED_DATASET = True
    report = SendReport()
    for contexts, group in _groups(files):
        ae = AE(ae_title=our_title)
        ae.maximum_pdu_size = max_pdu
        ae.requested_contexts = contexts
        assoc = _associate(ae, host, port, title, **_tls_args(tls, host))
        try:
            accepted = {
                (str(cx.abstract_syntax), str(cx.transfer_syntax[0]))
                for cx in assoc.accepted_contexts
            }
            for msg_id, info in enumerate(group, start=1):
                error = _send_one(assoc, info, accepted, msg_id % 65536)
                if error is None:
                    report.sent += 1
                else:
                    report.failed.append((info.path, error))
                if progress is not None:
                    progress(info, error)
                if not assoc.is_established:
                    raise PeerError("the peer ended the association")
        finally:
            if assoc.is_established:
                assoc.release()
    return report


def _send_one(
    assoc: Association, info: FileInfo, accepted: set[tuple[str, str]], msg_id: int
) -> str | None:
    try:
        if (info.sop_class_uid, info.transfer_syntax) in accepted:
            rsp = assoc.send_c_store(info.path, msg_id=msg_id)
        else:
            ds = dcmread(info.path)
            if ds.file_meta.TransferSyntaxUID.is_compressed:
                ds.decompress()
            rsp = assoc.send_c_store(ds, msg_id=msg_id)
    except Exception as exc:
        return f"cannot send: {exc}"
    if "Status" not in rsp:
        return "no response (timeout or abort)"
    code = int(rsp.Status)
    if code in (0x0000, 0xB000, 0xB006, 0xB007):
        return None
    comment = str(rsp.get("ErrorComment", "") or "")
    return f"status 0x{code:04X}" + (f": {comment}" if comment else "")


def send_commitment_report(
    our_title: str, known: KnownAE, result: commitment.CommitmentResult
) -> None:
    """Deliver the N-EVENT-REPORT; we request the association but act as the SCP role."""
    ae = AE(ae_title=our_title)
    ae.add_requested_context(commitment.STORAGE_COMMITMENT_SOP_CLASS)
    role = build_role(commitment.STORAGE_COMMITMENT_SOP_CLASS, scu_role=False, scp_role=True)
    try:
        assoc = _associate(ae, known.host, known.port, known.ae_title, ext_neg=[role])
    except PeerError as exc:
        log.warning("storage commitment %s: %s", result.transaction_uid, exc)
        return
    try:
        rsp, _ = assoc.send_n_event_report(
            commitment.event_information(result),
            result.event_type,
            commitment.STORAGE_COMMITMENT_SOP_CLASS,
            commitment.STORAGE_COMMITMENT_SOP_INSTANCE,
        )
        if int(rsp.get("Status", -1)) != 0:
            log.warning(
                "storage commitment %s: %s answered %s",
                result.transaction_uid,
                known.ae_title,
                rsp.get("Status"),
            )
    finally:
        assoc.release()
