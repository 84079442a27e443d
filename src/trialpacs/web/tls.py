"""HTTPS for ``trialpacs serve``: uvicorn's TLS options from the settings.

Misconfiguration (a certificate without its key, unreadable files) stops the
server at start with a message naming the setting, rather than serving plain
HTTP where the operator asked for HTTPS.
"""

from __future__ import annotations

import ssl
from typing import Any

from trialpacs.settings import Settings


class TlsConfigError(SystemExit):
    """TLS settings that cannot work; raised before any port is opened."""


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    cert, key, ca = settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file
    if cert is None and key is None:
        if ca is not None:
            raise TlsConfigError("tls_client_ca_file is set but HTTPS is off (no tls_cert_file)")
        return {}
    if cert is None or key is None:
        missing = "tls_key_file" if key is None else "tls_cert_file"
        raise TlsConfigError(f"HTTPS needs both tls_cert_file and tls_key_file; {missing} is unset")
    for name, path in (("tls_cert_file", cert), ("tls_key_file", key), ("tls_client_ca_file", ca)):
        if path is not None and not path.is_file():
            raise TlsConfigError(f"{name} {path} is not a readable file")
    try:
        probe = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        probe.load_cert_chain(str(cert), str(key))
    except (ssl.SSLError, OSError) as exc:
        raise TlsConfigError(f"tls_cert_file/tls_key_file cannot be loaded: {exc}") from exc
    options: dict[str, Any] = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    if ca is not None:
        options["ssl_ca_certs"] = str(ca)
        options["ssl_cert_reqs"] = ssl.CERT_REQUIRED
    return options
