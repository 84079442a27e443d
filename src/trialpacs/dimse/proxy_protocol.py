"""The PROXY protocol (HAProxy's spec, versions 1 and 2) in front of the DICOM listener.

Behind a TCP load balancer every DICOM peer seems to come from the balancer,
so the known-AE table (AE title *and* host) cannot tell peers apart. With
``send-proxy`` / ``send-proxy-v2`` HAProxy writes one header with the
client's real address before the first byte of the client's stream (before
a TLS ClientHello too); we read exactly that header and nothing more, and
the rest of the connection is the client's DICOM (or TLS) stream.

This module is pure: :func:`bytes_needed` says how many more bytes to read
without ever reading past the header, :func:`parse` turns a complete header
into a :class:`ProxyHeader`, and :func:`read_header` drives both over a
socket within a deadline. The listener (``trialpacs.dimse.listener``)
decides who may send a header at all (``dicom_trusted_proxies``).
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import time
from dataclasses import dataclass
from enum import StrEnum

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_PREFIX = b"PROXY "
V1_MAX_LENGTH = 107  # the spec's worst case, CRLF included
# Address block plus TLVs we accept in a v2 header. The spec allows 65535;
# HAProxy sends 12 or 36 bytes plus a few optional TLVs, cloud balancers a
# few hundred. A larger header is refused rather than buffered.
V2_MAX_BODY = 2048
_V2_ADDRESS_LENGTHS = {0x11: 12, 0x12: 12, 0x21: 36, 0x22: 36, 0x31: 216, 0x32: 216}


class ProxyProtocolError(Exception):
    """The connection did not start with a valid PROXY header; the message says why."""


class Command(StrEnum):
    PROXY = "PROXY"  # relayed connection: the header names the client
    LOCAL = "LOCAL"  # the proxy's own connection (health check): use the socket's peer


class Family(StrEnum):
    TCP4 = "TCP4"
    TCP6 = "TCP6"
    UNKNOWN = "UNKNOWN"  # v1 UNKNOWN, v2 AF_UNSPEC: the proxy does not know the client


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """A parsed header; ``length`` is how many bytes of the stream it took."""

    version: int
    command: Command
    family: Family
    source: Endpoint | None
    destination: Endpoint | None
    length: int

    def peer(self, connected: tuple[str, int]) -> tuple[str, int]:
        """The address the rest of the server should see for this connection.

        The client's when the header names one; otherwise (LOCAL, UNKNOWN)
        the socket's own peer, as the spec asks.
        """
        if self.command is Command.PROXY and self.source is not None:
            return (self.source.host, self.source.port)
        return connected


def bytes_needed(buf: bytes) -> int:
    """How many more bytes complete the header in ``buf`` (0: complete).

    Never more than the header still needs, so that reading exactly this
    many leaves the client's first byte in the socket. Raises
    :class:`ProxyProtocolError` as soon as ``buf`` cannot start a header.
    """
    if len(buf) < 8:
        _check_prefix(buf)
        return 8 - len(buf)
    if buf.startswith(V1_PREFIX):
        end = buf.find(b"\r\n")
        if end >= 0:
            return 0
        if len(buf) >= V1_MAX_LENGTH:
            raise ProxyProtocolError(
                f"PROXY v1 header too long: no CRLF within {V1_MAX_LENGTH} bytes"
            )
        return 1  # a v1 line ends at CRLF: one byte at a time, never past it
    _check_prefix(buf)
    if len(buf) < 16:
        return 16 - len(buf)
    length = struct.unpack("!H", buf[14:16])[0]
    if length > V2_MAX_BODY:
        raise ProxyProtocolError(
            f"PROXY v2 header too long: {length} bytes of addresses and TLVs "
            f"(at most {V2_MAX_BODY})"
        )
    return max(0, 16 + length - len(buf))


def _check_prefix(buf: bytes) -> None:
    n = min(len(buf), len(V2_SIGNATURE))
    if V2_SIGNATURE.startswith(buf[:n]):
        return
    n = min(len(buf), len(V1_PREFIX))
    if V1_PREFIX.startswith(buf[:n]):
        return
    raise ProxyProtocolError(
        f"no PROXY protocol signature (the connection starts with {bytes(buf[:16])!r})"
    )


def parse(buf: bytes) -> ProxyHeader:
    """Parse a complete header (as :func:`bytes_needed` delimits it); bytes after it are ignored."""
    if bytes_needed(buf) != 0:
        raise ProxyProtocolError(f"PROXY header truncated after {len(buf)} bytes")
    if buf.startswith(V1_PREFIX):
        return _parse_v1(buf[: buf.index(b"\r\n") + 2])
    return _parse_v2(buf)


def _parse_v1(line: bytes) -> ProxyHeader:
    length = len(line)
    if length > V1_MAX_LENGTH:
        raise ProxyProtocolError(f"PROXY v1 header too long: {length} bytes (at most 107)")
    try:
        text = line[:-2].decode("ascii")
    except UnicodeDecodeError as exc:
        raise ProxyProtocolError("PROXY v1 header is not ASCII") from exc
    fields = text.split(" ")
    if len(fields) >= 2 and fields[1] == "UNKNOWN":
        # "PROXY UNKNOWN" may carry anything up to the CRLF; it is ignored.
        return ProxyHeader(1, Command.PROXY, Family.UNKNOWN, None, None, length)
    if len(fields) != 6:
        raise ProxyProtocolError(
            f"PROXY v1 header has {len(fields)} fields, expected 6: {text[:60]!r}"
        )
    _, proto, src, dst, sport, dport = fields
    if proto not in ("TCP4", "TCP6"):
        raise ProxyProtocolError(f"PROXY v1 protocol {proto[:16]!r} is not TCP4, TCP6 or UNKNOWN")
    family = Family(proto)
    source = Endpoint(_v1_address(family, src, "source"), _v1_port(sport, "source"))
    destination = Endpoint(_v1_address(family, dst, "destination"), _v1_port(dport, "destination"))
    return ProxyHeader(1, Command.PROXY, family, source, destination, length)


def _v1_address(family: Family, text: str, which: str) -> str:
    version = 4 if family is Family.TCP4 else 6
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        address = None
    if address is None or address.version != version:
        raise ProxyProtocolError(
            f"PROXY v1 {which} address {text[:45]!r} is not an IPv{version} address"
        )
    return str(address)


def _v1_port(text: str, which: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 5 or int(text) > 65535:
        raise ProxyProtocolError(f"PROXY v1 {which} port {text[:8]!r} is not 0-65535")
    if len(text) > 1 and text[0] == "0":
        raise ProxyProtocolError(f"PROXY v1 {which} port {text!r} has a leading zero")
    return int(text)


def _parse_v2(buf: bytes) -> ProxyHeader:
    if buf[:12] != V2_SIGNATURE:
        raise ProxyProtocolError("PROXY v2 signature is wrong")
    ver_cmd, fam = buf[12], buf[13]
    length = struct.unpack("!H", buf[14:16])[0]
    total = 16 + length
    if ver_cmd >> 4 != 2:
        raise ProxyProtocolError(f"PROXY v2 header has version {ver_cmd >> 4}, expected 2")
    command = ver_cmd & 0x0F
    if command == 0x0:
        # LOCAL: the proxy speaking for itself (health checks); addresses ignored.
        return ProxyHeader(2, Command.LOCAL, Family.UNKNOWN, None, None, total)
    if command != 0x1:
        raise ProxyProtocolError(f"PROXY v2 command {command:#x} is neither LOCAL nor PROXY")
    if fam == 0x00:
        return ProxyHeader(2, Command.PROXY, Family.UNKNOWN, None, None, total)
    if fam not in (0x11, 0x21):
        raise ProxyProtocolError(f"PROXY v2 address family {fam:#04x} is not TCP over IPv4 or IPv6")
    need = _V2_ADDRESS_LENGTHS[fam]
    if length < need:
        raise ProxyProtocolError(
            f"PROXY v2 header too short: {length} bytes for a {need}-byte address block"
        )
    body = buf[16:total]
    if fam == 0x11:
        family = Family.TCP4
        src, dst = str(ipaddress.IPv4Address(body[0:4])), str(ipaddress.IPv4Address(body[4:8]))
        sport, dport = struct.unpack("!HH", body[8:12])
    else:
        family = Family.TCP6
        src, dst = str(ipaddress.IPv6Address(body[0:16])), str(ipaddress.IPv6Address(body[16:32]))
        sport, dport = struct.unpack("!HH", body[32:36])
    # TLVs after the address block (ALPN, authority, SSL, ...) are not used.
    return ProxyHeader(2, Command.PROXY, family, Endpoint(src, sport), Endpoint(dst, dport), total)


def read_header(sock: socket.socket, timeout: float) -> ProxyHeader:
    """Read exactly one header from ``sock`` within ``timeout`` seconds.

    Leaves the socket's timeout as it found it. A peer that sends nothing, or
    too slowly, or closes early, gets :class:`ProxyProtocolError`.
    """
    before = sock.gettimeout()
    deadline = time.monotonic() + timeout
    buf = bytearray()
    try:
        while (n := bytes_needed(bytes(buf))) > 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ProxyProtocolError(
                    f"no complete PROXY header within {timeout:g} s ({len(buf)} bytes received)"
                )
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(n)
            except TimeoutError as exc:
                raise ProxyProtocolError(
                    f"no complete PROXY header within {timeout:g} s ({len(buf)} bytes received)"
                ) from exc
            if not chunk:
                raise ProxyProtocolError(
                    f"connection closed after {len(buf)} bytes, before a complete PROXY header"
                )
            buf += chunk
    finally:
        sock.settimeout(before)
    return parse(bytes(buf))
