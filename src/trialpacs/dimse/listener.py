"""pynetdicom's association server with the accept-time work moved off the accept thread.

pynetdicom's ``AssociationServer.get_request`` accepts a connection and, on
the TLS listener, does the TLS handshake right there, on the one accept
thread and without a timeout: a single peer that connects and never sends
a ClientHello held every later TLS peer (tests/hardening/test_tls.py).
``ThreadingMixIn`` then runs ``process_request_thread`` on a thread of its
own, whose ``client_address`` becomes ``RequestHandler.remote`` and so the
association's ``requestor.address``, which the known-AE check, the audit
entries and our logs read.

:class:`ListenerServer` only accepts on the accept thread, and on the
connection's thread, where a slow peer delays nobody else:

1. with ``dicom_proxy_protocol``, refuses peers that are not in
   ``dicom_trusted_proxies`` and reads the PROXY header
   (``trialpacs.dimse.proxy_protocol``) within the ACSE timeout; HAProxy in
   TCP mode sends it before the client's ClientHello;
2. on the TLS listener, does the handshake within the ACSE timeout;

and hands the client's address (from the header, else the socket's) to
pynetdicom as the connection's ``client_address``. Refused connections are
closed and logged.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from pynetdicom import AE
from pynetdicom.transport import ThreadedAssociationServer
from pynetdicom.utils import make_target

from trialpacs.dimse.proxy_protocol import ProxyProtocolError, read_header

log = logging.getLogger("trialpacs.dimse")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ProxySettingsError(SystemExit):
    """PROXY protocol settings that cannot work; raised before the port opens."""


@dataclass(frozen=True, slots=True)
class ProxyPolicy:
    """Who may put a PROXY header in front of a DICOM connection, and how long it may take."""

    trusted: tuple[Network, ...]
    timeout: float

    @classmethod
    def from_settings(cls, trusted: Sequence[str], timeout: float) -> ProxyPolicy:
        if not trusted:
            raise ProxySettingsError(
                "dicom_proxy_protocol needs dicom_trusted_proxies (the load balancers' "
                "addresses or CIDRs): every other peer is refused"
            )
        networks: list[Network] = []
        for entry in trusted:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError as exc:
                raise ProxySettingsError(
                    f"dicom_trusted_proxies: {entry!r} is not an address or CIDR"
                ) from exc
        return cls(tuple(networks), timeout)

    def trusts(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # a dual-stack socket's view of an IPv4 peer
        return any(address in net for net in self.trusted)


class ListenerServer(ThreadedAssociationServer):
    """A ThreadedAssociationServer that does the PROXY header and TLS handshake per connection."""

    def __init__(
        self, *args: Any, proxy: ProxyPolicy | None, handshake_timeout: float, **kwargs: Any
    ) -> None:
        self.proxy = proxy
        self.handshake_timeout = handshake_timeout
        super().__init__(*args, **kwargs)

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        """Accept only; the header and the TLS handshake happen on the connection's thread."""
        assert self.socket is not None
        client, address = self.socket.accept()
        return client, address

    def process_request_thread(self, request: Any, client_address: tuple[str, int] | str) -> None:
        connected = _address(client_address)
        peer = connected
        where = f"{connected[0]}:{connected[1]}"
        try:
            if self.proxy is not None:
                if not self.proxy.trusts(connected[0]):
                    raise ProxyProtocolError(f"{connected[0]} is not in dicom_trusted_proxies")
                header = read_header(request, self.proxy.timeout)
                peer = header.peer(connected)
                if peer != connected:
                    where = f"{peer[0]}:{peer[1]} via proxy {connected[0]}:{connected[1]}"
                if not _sends_anything(request, self.proxy.timeout):
                    # A balancer's health check (PROXY v2 LOCAL, then close or
                    # reset) or a client gone at once: nothing for pynetdicom,
                    # which would log a reset PDU read as an error each time.
                    log.debug("DICOM connection from %s closed without data", where)
                    self.shutdown_request(request)
                    return
            if self.ssl_context is not None:
                request = self._handshake(request)
        except (ProxyProtocolError, OSError) as exc:
            log.warning("DICOM connection from %s closed: %s", where, exc)
            self.shutdown_request(request)
            return
        super().process_request_thread(request, peer)

    def _handshake(self, sock: socket.socket) -> ssl.SSLSocket:
        assert self.ssl_context is not None
        sock.settimeout(self.handshake_timeout)
        wrapped = self.ssl_context.wrap_socket(sock, server_side=True)
        wrapped.settimeout(None)  # pynetdicom polls with select; blocking as accept() gives
        return wrapped


def _sends_anything(sock: socket.socket, timeout: float) -> bool:
    """Wait for the first byte after the header without taking it off the socket.

    False when the peer closed (or reset) first; a peer silent for the whole
    ``timeout`` is refused, as pynetdicom's ARTIM timer would refuse it.
    """
    before = sock.gettimeout()
    sock.settimeout(timeout)
    try:
        return bool(sock.recv(1, socket.MSG_PEEK))
    except ConnectionResetError:
        return False
    except TimeoutError as exc:
        raise ProxyProtocolError(f"no data within {timeout:g} s after the PROXY header") from exc
    finally:
        sock.settimeout(before)


def _address(value: tuple[str, int] | str | Any) -> tuple[str, int]:
    if isinstance(value, tuple) and len(value) >= 2:
        return (str(value[0]), int(value[1]))
    return (str(value), 0)


def start_listener(
    ae: AE,
    address: tuple[str, int],
    *,
    evt_handlers: list[Any],
    handshake_timeout: float,
    proxy: ProxyPolicy | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> ListenerServer:
    """What ``AE.start_server(block=False)`` does, with our server class."""
    server = cast(
        ListenerServer,
        ae.make_server(
            address,
            ssl_context=ssl_context,
            evt_handlers=evt_handlers,
            server_class=ListenerServer,
            proxy=proxy,
            handshake_timeout=handshake_timeout,
        ),
    )
    timestamp = datetime.now().strftime("%Y%m%d%H%M%S")
    thread = threading.Thread(
        target=make_target(server.serve_forever), name=f"AcceptorServer@{timestamp}"
    )
    thread.daemon = True
    thread.start()
    ae._servers.append(server)
    return server
