"""PROXY protocol v1/v2 parsing (trialpacs.dimse.proxy_protocol) and the trusted-proxy policy.

Headers are built here from HAProxy's spec (doc/proxy-protocol.txt), not with
the module under test. The live path through a real HAProxy is in
test_proxy_live.py.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import threading
import time

import pytest

from trialpacs.dimse.listener import ProxyPolicy, ProxySettingsError
from trialpacs.dimse.proxy_protocol import (
    V2_SIGNATURE,
    Command,
    Endpoint,
    Family,
    ProxyHeader,
    ProxyProtocolError,
    bytes_needed,
    parse,
    read_header,
)

PROXY = ("10.9.8.7", 40000)  # the socket's peer: the balancer
ASSOCIATE_RQ = b"\x01\x00\x00\x00\x00\xcd\x00\x01"  # first bytes of an A-ASSOCIATE-RQ


def v2(
    command: int = 0x1,
    family: int = 0x11,
    addresses: bytes | None = None,
    tlvs: bytes = b"",
    version: int = 2,
) -> bytes:
    if addresses is None:
        addresses = (
            ipaddress.IPv4Address("192.0.2.10").packed
            + ipaddress.IPv4Address("198.51.100.1").packed
            + struct.pack("!HH", 56324, 11112)
        )
    body = addresses + tlvs
    return (
        V2_SIGNATURE + bytes([version << 4 | command, family]) + struct.pack("!H", len(body)) + body
    )


def v2_tcp6() -> bytes:
    return v2(
        family=0x21,
        addresses=ipaddress.IPv6Address("2001:db8::10").packed
        + ipaddress.IPv6Address("2001:db8::1").packed
        + struct.pack("!HH", 50000, 2762),
    )


# --- version 1 --------------------------------------------------------------------


def test_v1_tcp4_names_the_client_and_stops_at_crlf() -> None:
    line = b"PROXY TCP4 192.0.2.10 198.51.100.1 56324 11112\r\n"
    header = parse(line + ASSOCIATE_RQ)
    assert header == ProxyHeader(
        1,
        Command.PROXY,
        Family.TCP4,
        Endpoint("192.0.2.10", 56324),
        Endpoint("198.51.100.1", 11112),
        len(line),
    )
    assert header.peer(PROXY) == ("192.0.2.10", 56324)


def test_v1_tcp6() -> None:
    header = parse(b"PROXY TCP6 2001:db8:0:0::10 2001:db8::1 50000 2762\r\n")
    assert header.family is Family.TCP6
    assert header.source == Endpoint("2001:db8::10", 50000)  # normalised


def test_v1_unknown_keeps_the_socket_peer() -> None:
    header = parse(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n")
    assert header.family is Family.UNKNOWN and header.source is None
    assert header.peer(PROXY) == PROXY
    assert parse(b"PROXY UNKNOWN\r\n").peer(PROXY) == PROXY


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        (b"PROXY TCP4 192.0.2.10 198.51.100.1 56324\r\n", "5 fields, expected 6"),
        (b"PROXY TCP4 2001:db8::1 198.51.100.1 1 2\r\n", "is not an IPv4 address"),
        (b"PROXY TCP6 192.0.2.10 2001:db8::1 1 2\r\n", "is not an IPv6 address"),
        (b"PROXY TCP4 192.0.2.010 198.51.100.1 1 2\r\n", "is not an IPv4 address"),
        (b"PROXY TCP4 192.0.2.10 198.51.100.1 65536 2\r\n", "is not 0-65535"),
        (b"PROXY TCP4 192.0.2.10 198.51.100.1 080 2\r\n", "leading zero"),
        (b"PROXY TCP4 192.0.2.10 198.51.100.1 -1 2\r\n", "is not 0-65535"),
        (b"PROXY UDP4 192.0.2.10 198.51.100.1 1 2\r\n", "is not TCP4, TCP6 or UNKNOWN"),
        (b"PROXY  TCP4 192.0.2.10 198.51.100.1 1 2\r\n", "fields, expected 6"),
        (b"PROXY TCP4 192.0.2.10 198.51.100.1 1 \xff\r\n", "not ASCII"),
    ],
)
def test_v1_malformed_is_refused_by_name(line: bytes, needle: str) -> None:
    with pytest.raises(ProxyProtocolError, match=needle):
        parse(line)


def test_v1_too_long_is_refused_before_reading_on() -> None:
    line = b"PROXY UNKNOWN " + b"x" * 93  # 107 bytes, no CRLF
    with pytest.raises(ProxyProtocolError, match="too long: no CRLF within 107 bytes"):
        bytes_needed(line)
    assert bytes_needed(line[:-1]) == 1  # still one byte at a time below the limit


def test_v1_is_read_one_byte_at_a_time_after_the_prefix() -> None:
    line = b"PROXY TCP4 192.0.2.10 198.51.100.1 56324 11112\r\n"
    assert bytes_needed(b"") == 8
    assert bytes_needed(line[:5]) == 3
    for end in range(8, len(line)):
        assert bytes_needed(line[:end]) == 1
    assert bytes_needed(line) == 0


# --- version 2 --------------------------------------------------------------------


def test_v2_proxy_tcp4() -> None:
    raw = v2()
    header = parse(raw + ASSOCIATE_RQ)
    assert header == ProxyHeader(
        2,
        Command.PROXY,
        Family.TCP4,
        Endpoint("192.0.2.10", 56324),
        Endpoint("198.51.100.1", 11112),
        28,
    )
    assert header.peer(PROXY) == ("192.0.2.10", 56324)


def test_v2_proxy_tcp6_with_tlvs_ignored() -> None:
    header = parse(v2_tcp6())
    assert header.source == Endpoint("2001:db8::10", 50000)
    assert header.destination == Endpoint("2001:db8::1", 2762)
    # An ALPN TLV (type 0x01) and a NOOP (0x04) after the addresses.
    tlvs = b"\x01\x00\x02h2" + b"\x04\x00\x03\x00\x00\x00"
    with_tlvs = v2(tlvs=tlvs)
    header = parse(with_tlvs)
    assert header.source == Endpoint("192.0.2.10", 56324)
    assert header.length == len(with_tlvs) == 16 + 12 + len(tlvs)


def test_v2_local_and_unspec_keep_the_socket_peer() -> None:
    local = parse(v2(command=0x0, family=0x00, addresses=b""))
    assert local.command is Command.LOCAL
    assert local.peer(PROXY) == PROXY
    # LOCAL with addresses (HAProxy health checks may send them): ignored.
    assert parse(v2(command=0x0)).peer(PROXY) == PROXY
    unspec = parse(v2(family=0x00, addresses=b""))
    assert unspec.command is Command.PROXY and unspec.family is Family.UNKNOWN
    assert unspec.peer(PROXY) == PROXY


def test_v2_truncated_asks_for_exactly_the_missing_bytes() -> None:
    raw = v2()
    assert bytes_needed(raw[:8]) == 8
    assert bytes_needed(raw[:16]) == 12
    assert bytes_needed(raw[:20]) == 8
    assert bytes_needed(raw) == 0
    with pytest.raises(ProxyProtocolError, match="truncated after 27 bytes"):
        parse(raw[:-1])


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (v2(version=1), "version 1, expected 2"),
        (v2(command=0x2), "command 0x2 is neither LOCAL nor PROXY"),
        (v2(family=0x12), "family 0x12 is not TCP"),  # UDP over IPv4
        (v2(family=0x31, addresses=b"\0" * 216), "family 0x31 is not TCP"),  # AF_UNIX
        (v2(addresses=b"\0" * 8), "too short: 8 bytes for a 12-byte address block"),
        (v2(family=0x21, addresses=b"\0" * 12), "too short: 12 bytes for a 36-byte"),
    ],
)
def test_v2_malformed_is_refused_by_name(raw: bytes, needle: str) -> None:
    with pytest.raises(ProxyProtocolError, match=needle):
        parse(raw)


def test_v2_too_long_is_refused_from_the_length_field() -> None:
    raw = v2(tlvs=b"\x04" + struct.pack("!H", 3000) + b"\0" * 3000)
    with pytest.raises(ProxyProtocolError, match="too long: 3015 bytes"):
        bytes_needed(raw[:16])


@pytest.mark.parametrize(
    "start",
    [
        ASSOCIATE_RQ,  # a DICOM peer connecting directly
        b"\x16\x03\x01\x02\x00\x01\x00\x01",  # a TLS ClientHello
        b"GET / HTTP/1.1\r\n",
        V2_SIGNATURE[:5] + b"X" + V2_SIGNATURE[6:] + b"\x21\x11\x00\x0c",  # one byte off
        b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",  # the v1 keyword is case-sensitive
    ],
)
def test_wrong_signature_is_refused_at_the_first_bytes(start: bytes) -> None:
    with pytest.raises(ProxyProtocolError, match="no PROXY protocol signature"):
        bytes_needed(start[:8])
    with pytest.raises(ProxyProtocolError):
        parse(start + b"\0" * 40)


# --- over a socket ------------------------------------------------------------------


def _pair() -> tuple[socket.socket, socket.socket]:
    server, client = socket.socketpair()
    return server, client


def test_read_header_leaves_the_client_stream_untouched() -> None:
    for header in (v2(), v2_tcp6(), b"PROXY TCP4 192.0.2.10 198.51.100.1 56324 11112\r\n"):
        server, client = _pair()
        try:
            client.sendall(header + ASSOCIATE_RQ)
            parsed = read_header(server, timeout=5)
            assert parsed.length == len(header)
            assert server.gettimeout() is None  # restored
            assert server.recv(64) == ASSOCIATE_RQ
        finally:
            server.close()
            client.close()


def test_read_header_from_a_peer_sending_byte_by_byte() -> None:
    server, client = _pair()
    raw = v2()

    def trickle() -> None:
        for i in range(len(raw)):
            client.send(raw[i : i + 1])
            time.sleep(0.002)

    sender = threading.Thread(target=trickle)
    sender.start()
    try:
        assert read_header(server, timeout=5).source == Endpoint("192.0.2.10", 56324)
    finally:
        sender.join()
        server.close()
        client.close()


def test_read_header_gives_up_on_silent_slow_or_closing_peers() -> None:
    server, client = _pair()
    try:
        client.sendall(v2()[:10])
        start = time.monotonic()
        with pytest.raises(ProxyProtocolError, match=r"within 0.3 s \(10 bytes received\)"):
            read_header(server, timeout=0.3)
        assert time.monotonic() - start < 2
    finally:
        server.close()
        client.close()
    server, client = _pair()
    try:
        client.sendall(b"PROXY TCP4 1.2")
        client.close()
        with pytest.raises(ProxyProtocolError, match="closed after 14 bytes"):
            read_header(server, timeout=5)
    finally:
        server.close()


# --- who may send it -------------------------------------------------------------------


def test_policy_trusts_only_the_listed_proxies() -> None:
    policy = ProxyPolicy.from_settings(["127.0.0.1", "10.0.0.0/8", "2001:db8::/32"], 5)
    assert policy.trusts("127.0.0.1")
    assert policy.trusts("10.200.3.4")
    assert policy.trusts("::ffff:10.1.2.3")  # a dual-stack socket's IPv4 peer
    assert policy.trusts("2001:db8::5")
    assert not policy.trusts("127.0.0.2")
    assert not policy.trusts("192.168.1.1")
    assert not policy.trusts("not-an-address")


def test_policy_settings_errors_name_the_setting() -> None:
    with pytest.raises(ProxySettingsError, match="needs dicom_trusted_proxies"):
        ProxyPolicy.from_settings([], 5)
    with pytest.raises(ProxySettingsError, match=r"dicom_trusted_proxies: 'lb\.example' is not"):
        ProxyPolicy.from_settings(["10.0.0.1", "lb.example"], 5)
