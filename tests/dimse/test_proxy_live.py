"""The DICOM listeners behind a real HAProxy (Debian's /usr/sbin/haproxy) in TCP mode.

HAProxy on 127.0.0.1 sends ``send-proxy-v2`` (and ``send-proxy``, v1, on a
second frontend) to a live ``trialpacs serve`` with
``dicom_proxy_protocol`` on and only 127.0.0.1 trusted. Clients bind to
127.0.0.2, so the server can tell the client's address (127.0.0.2, from the
header) from the balancer's (127.0.0.1, the socket's peer): the known AE is
registered with host 127.0.0.2, and the same AE title calling from
127.0.0.1 through the same balancer is rejected.
"""

from __future__ import annotations

import socket
import sqlite3
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from dicomfactory import make_dataset, to_bytes
from dimse.conftest import cli, dcmtk_env, require_dcmtk
from hardening.certs import Pki, make_pki
from support.services import LiveServer, free_port, live_server
from trialpacs.dimse.tls import client_context

pytestmark = pytest.mark.slow

HAPROXY = "/usr/sbin/haproxy"
CLIENT = "127.0.0.2"  # where the real client calls from
BALANCER = "127.0.0.1"  # where HAProxy connects to the server from
KNOWN = "REALCLIENT"  # known AE registered at CLIENT


@dataclass
class Topology:
    live: LiveServer
    pki: Pki
    tls_port: int
    v2_port: int  # HAProxy -> plain DICOM port, send-proxy-v2
    v1_port: int  # HAProxy -> plain DICOM port, send-proxy (v1)
    tls_v2_port: int  # HAProxy -> DICOM TLS port (TLS passes through), send-proxy-v2

    def log(self) -> str:
        return self.live.log.read_text(errors="replace")

    def audit(self, action: str) -> list[tuple[str, str, str]]:
        with sqlite3.connect(self.live.data_dir / "index.sqlite3") as db:
            rows = db.execute(
                "SELECT actor, address, outcome FROM audit_log WHERE action = ? ORDER BY seq",
                (action,),
            ).fetchall()
        return [(str(a), str(b), str(c)) for a, b, c in rows]


def _haproxy_cfg(dicom_port: int, tls_port: int, ports: dict[str, int]) -> str:
    def pair(name: str, port: int, target: int, send: str, check: str = "") -> str:
        return (
            f"frontend {name}\n    mode tcp\n    bind {BALANCER}:{port}\n"
            f"    default_backend {name}_be\n\n"
            f"backend {name}_be\n    mode tcp\n"
            f"    server s1 {BALANCER}:{target} {send}{check}\n\n"
        )

    return (
        "global\n    maxconn 256\n\n"
        "defaults\n    timeout connect 5s\n    timeout client 60s\n    timeout server 60s\n\n"
        # Health checks on the v2 backend: HAProxy sends them a PROXY v2 LOCAL header.
        + pair("dicom_v2", ports["v2"], dicom_port, "send-proxy-v2", " check inter 500ms")
        + pair("dicom_v1", ports["v1"], dicom_port, "send-proxy")
        + pair("dicom_tls", ports["tls"], tls_port, "send-proxy-v2")
    )


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            pytest.fail(f"haproxy exited with {proc.returncode}: {out}")
        # A listening check that does not open a connection (which HAProxy would relay).
        probe = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True)
        if probe.stdout.strip():
            return
        time.sleep(0.1)
    pytest.fail(f"haproxy did not listen on {port} within {timeout}s")


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    require_dcmtk()
    pki = make_pki(tmp_path_factory.mktemp("pki"))
    tls_port = free_port()
    env = {
        "TRIALPACS_DICOM_PROXY_PROTOCOL": "true",
        "TRIALPACS_DICOM_TRUSTED_PROXIES": f'["{BALANCER}"]',
        "TRIALPACS_DICOM_ACCEPT_UNKNOWN": "false",
        "TRIALPACS_DICOM_ACSE_TIMEOUT": "3",
        "TRIALPACS_PIPELINE_EXECUTOR": "off",
        "TRIALPACS_DICOM_TLS_PORT": str(tls_port),
        "TRIALPACS_DICOM_TLS_CERT_FILE": str(pki.server_cert),
        "TRIALPACS_DICOM_TLS_KEY_FILE": str(pki.server_key),
        "TRIALPACS_DICOM_TLS_CA_FILE": str(pki.ca),
    }
    data_dir = tmp_path_factory.mktemp("proxied")
    with live_server(data_dir, env, dicom=True) as live:
        assert live.dicom_port
        # A known AE at the client's address, with a global read grant (C-STORE needs none).
        cli(live.env, "ae", "add", KNOWN, CLIENT, "104", "--grant", "reader")
        ports = {"v2": free_port(), "v1": free_port(), "tls": free_port()}
        cfg = data_dir / "haproxy.cfg"
        cfg.write_text(_haproxy_cfg(live.dicom_port, tls_port, ports))
        check = subprocess.run([HAPROXY, "-c", "-f", str(cfg)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        proc = subprocess.Popen(
            [HAPROXY, "-db", "-f", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        try:
            for port in ports.values():
                _wait_listening(port, proc)
            yield Topology(live, pki, tls_port, ports["v2"], ports["v1"], ports["tls"])
        finally:
            proc.terminate()
            proc.wait(10)


def _echo(
    port: int,
    *,
    source: str = CLIENT,
    title: str = KNOWN,
    tls: ssl.SSLContext | None = None,
) -> str:
    """C-ECHO from ``source``: 'accepted', 'rejected' or 'aborted' (no association)."""
    ae = AE(ae_title=title)
    ae.acse_timeout = 10
    ae.add_requested_context(Verification)
    assoc = ae.associate(
        "127.0.0.1",
        port,
        ae_title="TRIALPACS",
        bind_address=(source, 0),
        tls_args=(tls, "127.0.0.1") if tls is not None else None,
    )
    if assoc.is_established:
        status = assoc.send_c_echo()
        assoc.release()
        assert status.Status == 0x0000
        return "accepted"
    return "rejected" if assoc.is_rejected else "aborted"


def test_known_ae_check_sees_the_client_behind_haproxy(topology: Topology) -> None:
    assert _echo(topology.v2_port) == "accepted"
    assert _echo(topology.v1_port) == "accepted"
    # The same title through the same balancer, but calling from the balancer's
    # own address: the header says 127.0.0.1, which is not the AE's host.
    assert _echo(topology.v2_port, source=BALANCER) == "rejected"
    echoes = topology.audit("dimse.C-ECHO")
    assert echoes[-2:] == [(f"ae:{KNOWN}", CLIENT, "success")] * 2
    denied = topology.audit("dimse.A-ASSOCIATE")
    assert denied[-1] == (f"ae:{KNOWN}", BALANCER, "denied")
    assert f"rejecting association from {KNOWN}@{BALANCER}: calling host not allowed" in (
        topology.log()
    )


def test_c_store_through_haproxy_is_audited_with_the_client_address(topology: Topology) -> None:
    ds = make_dataset(study="1.2.826.0.1.3680043.8.498.881")
    to_bytes(ds)  # gives it the file meta (transfer syntax) pynetdicom sends it in
    ae = AE(ae_title=KNOWN)
    ae.add_requested_context(ds.SOPClassUID, ExplicitVRLittleEndian)
    assoc = ae.associate(
        "127.0.0.1", topology.v2_port, ae_title="TRIALPACS", bind_address=(CLIENT, 0)
    )
    assert assoc.is_established
    try:
        assert assoc.send_c_store(ds).Status == 0x0000
    finally:
        assoc.release()
    stores = topology.audit("dimse.C-STORE")
    assert stores[-1] == (f"ae:{KNOWN}", CLIENT, "success")
    rsp = httpx.get(
        f"{topology.live.dicomweb}/instances",
        params={"SOPInstanceUID": ds.SOPInstanceUID},
        headers=topology.live.headers(),
    )
    assert rsp.status_code == 200 and len(rsp.json()) == 1


def test_dcmtk_through_haproxy(topology: Topology, tmp_path: Path) -> None:
    """dcmtk cannot choose its source address, so it calls from 127.0.0.1 as a
    known AE registered there: the header carries 127.0.0.1 and it is admitted."""
    cli(topology.live.env, "ae", "add", "DCMTKSCU", BALANCER, "104")
    path = tmp_path / "dcmtk.dcm"
    ds = make_dataset(study="1.2.826.0.1.3680043.8.498.882")
    path.write_bytes(to_bytes(ds))
    base = ["-aet", "DCMTKSCU", "-aec", "TRIALPACS", "127.0.0.1", str(topology.v2_port)]
    echo = subprocess.run(["echoscu", *base], capture_output=True, text=True, env=dcmtk_env())
    assert echo.returncode == 0, echo.stdout + echo.stderr
    store = subprocess.run(
        ["storescu", *base, str(path)], capture_output=True, text=True, env=dcmtk_env()
    )
    assert store.returncode == 0, store.stdout + store.stderr
    assert topology.audit("dimse.C-STORE")[-1] == ("ae:DCMTKSCU", BALANCER, "success")


def test_dicom_tls_passes_through_haproxy_with_the_header_first(topology: Topology) -> None:
    ctx = client_context(topology.pki.ca, topology.pki.client_cert, topology.pki.client_key)
    assert _echo(topology.tls_v2_port, tls=ctx) == "accepted"
    assert topology.audit("dimse.C-ECHO")[-1] == (f"ae:{KNOWN}", CLIENT, "success")
    # Without a client certificate the handshake still fails after the header.
    bare = client_context(topology.pki.ca)
    assert _echo(topology.tls_v2_port, tls=bare) == "aborted"
    time.sleep(0.5)
    refusal = [line for line in topology.log().splitlines() if "closed: [SSL" in line]
    assert refusal, topology.log()[-2000:]
    # The log names the client from the header and the balancer it came through.
    assert f"DICOM connection from {CLIENT}:" in refusal[-1]
    assert f"via proxy {BALANCER}:" in refusal[-1]


def test_connections_without_a_header_or_from_untrusted_peers_are_closed(
    topology: Topology,
) -> None:
    port = topology.live.dicom_port
    assert port
    # From the trusted address but without a header: the A-ASSOCIATE-RQ is not a header.
    assert _echo(port, source=BALANCER) == "aborted"
    # From an address that is not a trusted proxy: closed before reading anything.
    assert _echo(port, source=CLIENT) == "aborted"
    # A forged header from an untrusted peer does not help.
    with socket.create_connection(("127.0.0.1", port), source_address=(CLIENT, 0)) as sock:
        sock.sendall(b"PROXY TCP4 127.0.0.2 127.0.0.1 5000 11112\r\n")
        sock.settimeout(10)
        assert sock.recv(100) == b""  # closed by the server
    # The TLS listener too, before any handshake.
    ctx = client_context(topology.pki.ca, topology.pki.client_cert, topology.pki.client_key)
    assert _echo(topology.tls_port, source=BALANCER, tls=ctx) == "aborted"
    time.sleep(0.5)
    log = topology.log()
    assert f"DICOM connection from {BALANCER}:" in log
    assert "closed: no PROXY protocol signature" in log
    assert f"closed: {CLIENT} is not in dicom_trusted_proxies" in log


def test_silent_peer_is_dropped_after_the_acse_timeout(topology: Topology) -> None:
    port = topology.live.dicom_port
    assert port
    with socket.create_connection(("127.0.0.1", port), source_address=(BALANCER, 0)) as sock:
        start = time.monotonic()
        sock.settimeout(15)
        assert sock.recv(100) == b""
        waited = time.monotonic() - start
    assert 2 < waited < 10, waited  # dicom_acse_timeout is 3 s
    # Meanwhile, and after, the balancer's clients are served.
    assert _echo(topology.v2_port) == "accepted"


def test_haproxy_health_checks_are_closed_quietly(topology: Topology) -> None:
    """HAProxy's checks (every 500 ms here) send a PROXY v2 LOCAL header and reset
    the connection: closed without a warning and without reaching pynetdicom,
    which logs a reset during a PDU read as an error with a traceback."""
    time.sleep(1.5)
    log = topology.log()
    assert "Connection reset by peer" not in log
    assert "Connection closed before the entire PDU" not in log
    warnings = [line for line in log.splitlines() if "via proxy" in line]
    assert all("closed: [SSL" in line for line in warnings), warnings  # the TLS test's refusal
