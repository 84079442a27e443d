"""DICOM TLS (PS3.15 Annex B, the BCP 195 profiles) for our SCP and SCU.

The TLS listener is a second pynetdicom server of the same AE on its own
port (2762 by convention), so a site can keep plain DIMSE on the hospital
network and expose only the TLS port. With ``dicom_tls_require_client_cert``
(the default) a peer must present a certificate chaining to
``dicom_tls_ca_file``: Annex B's authenticated TLS, where the certificate, not
the AE title, says who is calling.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from trialpacs.settings import Settings


class DicomTlsConfigError(SystemExit):
    """DICOM TLS settings that cannot work; raised before the port opens."""


def _check_files(pairs: list[tuple[str, Path | None]]) -> None:
    for name, path in pairs:
        if path is not None and not path.is_file():
            raise DicomTlsConfigError(f"{name} {path} is not a readable file")


def _harden(ctx: ssl.SSLContext) -> ssl.SSLContext:
    # BCP 195 (RFC 9325): TLS 1.2 or newer, no compression, no renegotiation.
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    return ctx


def server_context(settings: Settings) -> ssl.SSLContext | None:
    """The SCP's context, or None when no TLS listener is configured."""
    if not settings.dicom_tls_port:
        return None
    cert, key, ca = (
        settings.dicom_tls_cert_file,
        settings.dicom_tls_key_file,
        settings.dicom_tls_ca_file,
    )
    if cert is None or key is None:
        raise DicomTlsConfigError("dicom_tls_port needs dicom_tls_cert_file and dicom_tls_key_file")
    if settings.dicom_tls_require_client_cert and ca is None:
        raise DicomTlsConfigError(
            "dicom_tls_require_client_cert needs dicom_tls_ca_file (the CA of peers' "
            "certificates); or set dicom_tls_require_client_cert: false"
        )
    _check_files(
        [("dicom_tls_cert_file", cert), ("dicom_tls_key_file", key), ("dicom_tls_ca_file", ca)]
    )
    ctx = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    try:
        ctx.load_cert_chain(str(cert), str(key))
        if ca is not None:
            ctx.load_verify_locations(cafile=str(ca))
    except (ssl.SSLError, OSError) as exc:
        raise DicomTlsConfigError(f"DICOM TLS certificate files cannot be loaded: {exc}") from exc
    ctx.verify_mode = (
        ssl.CERT_REQUIRED if settings.dicom_tls_require_client_cert else ssl.CERT_OPTIONAL
    )
    if not settings.dicom_tls_require_client_cert and ca is None:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def client_context(
    ca_file: Path | None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
    *,
    check_hostname: bool = True,
) -> ssl.SSLContext:
    """A context for calling a TLS peer: verifies its certificate, offers ours."""
    _check_files([("CA file", ca_file), ("certificate", cert_file), ("key", key_file)])
    ctx = _harden(ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file))
    ctx.check_hostname = check_hostname
    if cert_file is not None:
        ctx.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
    return ctx


def settings_client_context(settings: Settings) -> ssl.SSLContext:
    """Our SCU context from the same files the TLS listener uses."""
    return client_context(
        settings.dicom_tls_ca_file, settings.dicom_tls_cert_file, settings.dicom_tls_key_file
    )
