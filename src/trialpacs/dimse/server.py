"""The DICOM listener: one pynetdicom AE serving the archive in background threads.

``trialpacs serve`` calls :func:`start` next to uvicorn so both share one
Archive (one index pool, one SQLite write lock).
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from typing import Any

from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, DEFAULT_TRANSFER_SYNTAXES, _config, evt
from pynetdicom.presentation import (
    AllStoragePresentationContexts,
    QueryRetrievePresentationContexts,
    StorageCommitmentPresentationContexts,
    VerificationPresentationContexts,
)
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)
from pynetdicom.transport import ThreadedAssociationServer

from trialpacs.archive import Archive
from trialpacs.dimse import handlers
from trialpacs.dimse import tls as dimse_tls
from trialpacs.dimse.listener import ProxyPolicy, start_listener
from trialpacs.dimse.scu import send_commitment_report

log = logging.getLogger("trialpacs.dimse")

QR_MODELS = (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelMove,
    PatientRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelGet,
)


@dataclass
class DimseServer:
    """A running listener; ``stop()`` ends every association and closes the port."""

    ae: AE
    server: ThreadedAssociationServer
    context: handlers.DimseContext
    tls_server: ThreadedAssociationServer | None = None

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def tls_port(self) -> int | None:
        return int(self.tls_server.server_address[1]) if self.tls_server else None

    def stop(self) -> None:
        self.server.shutdown()
        if self.tls_server is not None:
            self.tls_server.shutdown()
        for thread in self.context.commitment_reports:
            thread.join(timeout=10)


def configure_pynetdicom() -> None:
    """Process-wide pynetdicom switches, chosen for throughput.

    pynetdicom's standard handlers format a log line (and decode identifiers)
    for every DIMSE message even when nobody reads them; our handlers log what
    matters (refusals and errors) instead.
    """
    _config.LOG_HANDLER_LEVEL = "none"
    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False


def build_ae(ae_title: str, max_pdu: int, max_associations: int) -> AE:
    ae = AE(ae_title=ae_title)
    ae.maximum_pdu_size = max_pdu
    ae.maximum_associations = max_associations
    ae.require_called_aet = False
    for cx in AllStoragePresentationContexts:
        # SCU role too: C-GET sends stored instances back as C-STORE on the
        # caller's own association, which needs the role selection accepted.
        ae.add_supported_context(
            str(cx.abstract_syntax), ALL_TRANSFER_SYNTAXES, scu_role=True, scp_role=True
        )
    for cx in VerificationPresentationContexts + StorageCommitmentPresentationContexts:
        ae.add_supported_context(str(cx.abstract_syntax), DEFAULT_TRANSFER_SYNTAXES)
    supported_qr = {str(uid) for uid in QR_MODELS}
    for cx in QueryRetrievePresentationContexts:
        if cx.abstract_syntax in supported_qr:
            ae.add_supported_context(cx.abstract_syntax, DEFAULT_TRANSFER_SYNTAXES)
    return ae


def start(archive: Archive, *, port: int | None = None) -> DimseServer:
    """Start the listener on ``settings.dicom_host:dicom_port`` (or ``port``)."""
    settings = archive.settings
    configure_pynetdicom()
    ae = build_ae(settings.ae_title, settings.dicom_max_pdu, settings.dicom_max_associations)
    # A peer that connects and says nothing, or stalls mid-association, is
    # dropped after these (pynetdicom's ARTIM, DIMSE and idle timers).
    ae.acse_timeout = settings.dicom_acse_timeout
    ae.dimse_timeout = settings.dicom_dimse_timeout
    ae.network_timeout = settings.dicom_network_timeout
    tls_context = dimse_tls.server_context(settings)
    ctx = handlers.DimseContext(archive=archive, ae_title=settings.ae_title)
    ctx.report_sender = lambda known, result: send_commitment_report(
        settings.ae_title, known, result
    )
    evt_handlers: list[Any] = [
        (evt.EVT_CONN_OPEN, handlers.handle_conn_open),
        (evt.EVT_REQUESTED, handlers.handle_requested, [ctx]),
        (evt.EVT_C_ECHO, handlers.handle_echo, [ctx]),
        (evt.EVT_C_STORE, handlers.handle_store, [ctx]),
        (evt.EVT_C_FIND, handlers.handle_find, [ctx]),
        (evt.EVT_C_MOVE, handlers.handle_move, [ctx]),
        (evt.EVT_C_GET, handlers.handle_get, [ctx]),
        (evt.EVT_N_ACTION, handlers.handle_n_action, [ctx]),
    ]
    proxy = (
        ProxyPolicy.from_settings(settings.dicom_trusted_proxies, settings.dicom_acse_timeout)
        if settings.dicom_proxy_protocol
        else None
    )

    def listen(
        address: tuple[str, int], ssl_context: ssl.SSLContext | None = None
    ) -> ThreadedAssociationServer:
        # Our server class: PROXY header and TLS handshake on the connection's
        # own thread, bounded by the ACSE timeout (trialpacs.dimse.listener).
        return start_listener(
            ae,
            address,
            evt_handlers=evt_handlers,
            proxy=proxy,
            ssl_context=ssl_context,
            handshake_timeout=settings.dicom_acse_timeout,
        )

    listen_port = settings.dicom_port if port is None else port
    if listen_port is None or (listen_port == 0 and port is None):
        # TLS only: the TLS listener is the one listener.
        if tls_context is None:
            raise ValueError("no DICOM port configured (dicom_port or dicom_tls_port)")
        server = listen((settings.dicom_host, int(settings.dicom_tls_port or 0)), tls_context)
        log.info(
            "DICOM TLS listener %s on %s:%d",
            settings.ae_title,
            settings.dicom_host,
            int(server.server_address[1]),
        )
        return DimseServer(ae=ae, server=server, context=ctx, tls_server=None)
    server = listen((settings.dicom_host, int(listen_port or 0)))
    running = DimseServer(ae=ae, server=server, context=ctx)
    log.info(
        "DICOM listener %s on %s:%d%s",
        settings.ae_title,
        settings.dicom_host,
        running.port,
        " (PROXY protocol)" if proxy is not None else "",
    )
    if tls_context is not None:
        running.tls_server = listen(
            (settings.dicom_host, int(settings.dicom_tls_port or 0)), tls_context
        )
        log.info(
            "DICOM TLS listener %s on %s:%d",
            settings.ae_title,
            settings.dicom_host,
            running.tls_port,
        )
    return running
