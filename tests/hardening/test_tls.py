"""HTTPS for `trialpacs serve` and DICOM TLS (PS3.15 Annex B), on loopback with a test PKI.

Peers: httpx, pynetdicom through trialpacs' own SCU, and Debian's dcmtk
(echoscu/storescu +tls).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dicomfactory import make_bytes
from hardening.certs import Pki, make_pki
from hardening.servers import Served, served, tls_verify
from support.services import free_port, trialpacs_cmd
from trialpacs.dimse import scu
from trialpacs.dimse.tls import client_context

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _qido_count(server: Served, study: str) -> int:
    with server.client() as c:
        rsp = c.get("/dicomweb/studies", params={"StudyInstanceUID": study})
        assert rsp.status_code in (200, 204), rsp.text
        return len(rsp.json()) if rsp.status_code == 200 else 0


# ---------------------------------------------------------------- HTTPS


@pytest.fixture(scope="module")
def https_server(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Served]:
    env = {
        "TRIALPACS_TLS_CERT_FILE": str(pki.server_cert),
        "TRIALPACS_TLS_KEY_FILE": str(pki.server_key),
    }
    with served(
        tmp_path_factory.mktemp("https"), env, dicom=False, scheme="https", verify=str(pki.ca)
    ) as server:
        yield server


def test_https_answers_authenticated_requests(https_server: Served) -> None:
    with https_server.client() as c:
        assert c.get("/health").status_code == 200
        assert c.get("/dicomweb/studies").status_code in (200, 204)
        assert c.get("/dicomweb/studies", headers={"Authorization": ""}).status_code == 401


def test_https_certificate_is_checked_by_clients(https_server: Served) -> None:
    # A client that does not trust our test CA refuses the connection: the
    # server really presents the configured certificate, not a default one.
    with pytest.raises(httpx.ConnectError), httpx.Client(verify=True) as c:
        c.get(https_server.url + "/health")


def test_plain_http_on_the_https_port_gets_nothing_useful(https_server: Served) -> None:
    with httpx.Client() as c:
        try:
            rsp = c.get(f"http://127.0.0.1:{https_server.http_port}/health", timeout=5)
        except httpx.HTTPError:
            return
        assert rsp.status_code != 200


def test_https_with_required_client_certificates(tmp_path: Path, pki: Pki) -> None:
    env = {
        "TRIALPACS_TLS_CERT_FILE": str(pki.server_cert),
        "TRIALPACS_TLS_KEY_FILE": str(pki.server_key),
        "TRIALPACS_TLS_CLIENT_CA_FILE": str(pki.ca),
    }
    cert = (str(pki.client_cert), str(pki.client_key))
    with served(tmp_path, env, dicom=False, scheme="https", verify=str(pki.ca), cert=cert) as s:
        with s.client() as c:
            assert c.get("/health").status_code == 200
        for bad in (None, (str(pki.stranger_cert), str(pki.stranger_key))):
            with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
                httpx.get(s.url + "/health", verify=tls_verify(str(pki.ca), bad), timeout=5)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"TRIALPACS_TLS_CERT_FILE": "{cert}"}, "tls_key_file"),
        (
            {"TRIALPACS_TLS_CERT_FILE": "{cert}", "TRIALPACS_TLS_KEY_FILE": "/nope.key"},
            "tls_key_file /nope.key",
        ),
        (
            {"TRIALPACS_TLS_CERT_FILE": "{cert}", "TRIALPACS_TLS_KEY_FILE": "{stranger_key}"},
            "cannot be loaded",
        ),
        (
            {
                "TRIALPACS_DICOM_TLS_PORT": "{port}",
                "TRIALPACS_DICOM_TLS_CERT_FILE": "{cert}",
                "TRIALPACS_DICOM_TLS_KEY_FILE": "{key}",
            },
            "dicom_tls_ca_file",
        ),
    ],
)
def test_broken_tls_settings_stop_the_server_with_a_reason(
    tmp_path: Path, pki: Pki, env: dict[str, str], named: str
) -> None:
    values = {
        "cert": str(pki.server_cert),
        "key": str(pki.server_key),
        "stranger_key": str(pki.stranger_key),
        "port": str(free_port()),
    }
    full = {
        **os.environ,
        "TRIALPACS_DATA_DIR": str(tmp_path),
        "TRIALPACS_DICOM_PORT": "0",
        **{k: v.format(**values) for k, v in env.items()},
    }
    proc = subprocess.run(
        [*trialpacs_cmd(), "serve", "--http-port", str(free_port())],
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert named in proc.stdout + proc.stderr


# ---------------------------------------------------------------- DICOM TLS


@pytest.fixture(scope="module")
def dicom_tls_server(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Served]:
    tls_port = free_port()
    env = {
        "TRIALPACS_DICOM_TLS_PORT": str(tls_port),
        "TRIALPACS_DICOM_TLS_CERT_FILE": str(pki.server_cert),
        "TRIALPACS_DICOM_TLS_KEY_FILE": str(pki.server_key),
        "TRIALPACS_DICOM_TLS_CA_FILE": str(pki.ca),
        "TRIALPACS_DICOM_ACSE_TIMEOUT": "5",
    }
    with served(tmp_path_factory.mktemp("dicomtls"), env) as server:
        server.env["TLS_PORT"] = str(tls_port)
        yield server


def _tls_port(server: Served) -> int:
    return int(server.env["TLS_PORT"])


def _client(pki: Pki, *, cert: bool = True, stranger: bool = False) -> ssl.SSLContext:
    if stranger:
        return client_context(pki.ca, pki.stranger_cert, pki.stranger_key)
    if cert:
        return client_context(pki.ca, pki.client_cert, pki.client_key)
    return client_context(pki.ca)


def test_dicom_tls_echo_and_store_with_pynetdicom(
    dicom_tls_server: Served, pki: Pki, tmp_path: Path
) -> None:
    port = _tls_port(dicom_tls_server)
    assert scu.echo("PYSCU", "TRIALPACS", "127.0.0.1", port, tls=_client(pki)) == 0
    study = "1.2.826.0.1.3680043.8.498.771"
    path = tmp_path / "one.dcm"
    path.write_bytes(make_bytes(study=study))
    files = scu.collect_files([path]).files
    report = scu.send("PYSCU", "TRIALPACS", "127.0.0.1", port, files, tls=_client(pki))
    assert report.sent == 1, report.failed
    assert _qido_count(dicom_tls_server, study) == 1


@pytest.mark.parametrize("who", ["no certificate", "certificate of another CA"])
def test_dicom_tls_refuses_peers_without_a_trusted_certificate(
    dicom_tls_server: Served, pki: Pki, who: str
) -> None:
    ctx = _client(pki, cert=False) if who == "no certificate" else _client(pki, stranger=True)
    with pytest.raises(scu.PeerError):
        scu.echo("PYSCU", "TRIALPACS", "127.0.0.1", _tls_port(dicom_tls_server), tls=ctx)


def test_dicom_tls_client_checks_our_certificate(dicom_tls_server: Served, pki: Pki) -> None:
    # Trusting only another CA, the SCU refuses our server.
    ctx = client_context(pki.stranger_cert, pki.client_cert, pki.client_key)
    with pytest.raises(scu.PeerError):
        scu.echo("PYSCU", "TRIALPACS", "127.0.0.1", _tls_port(dicom_tls_server), tls=ctx)


def test_silent_peer_on_the_tls_port_does_not_block_other_peers(
    dicom_tls_server: Served, pki: Pki
) -> None:
    """pynetdicom does the TLS handshake on its accept thread, without a timeout:
    one connection that never sends a ClientHello held every later TLS peer.
    The handshake now runs on the connection's thread, bounded by the ACSE timeout."""
    port = _tls_port(dicom_tls_server)
    answers: list[object] = []

    def echo() -> None:
        try:
            answers.append(scu.echo("PYSCU", "TRIALPACS", "127.0.0.1", port, tls=_client(pki)))
        except Exception as exc:
            answers.append(exc)

    with socket.create_connection(("127.0.0.1", port)) as silent:
        time.sleep(0.3)
        start = time.monotonic()
        caller = threading.Thread(target=echo, daemon=True)
        caller.start()
        caller.join(15)
        assert answers == [0], f"no C-ECHO answer while a silent peer was connected: {answers}"
        assert time.monotonic() - start < 10
        # And the silent peer itself is dropped after dicom_acse_timeout (5 s here).
        silent.settimeout(15)
        with contextlib.suppress(ConnectionResetError):  # closed or reset: both drop it
            assert silent.recv(1) == b""
        assert time.monotonic() - start < 12


def test_plain_dicom_port_still_serves(dicom_tls_server: Served) -> None:
    assert scu.echo("PYSCU", "TRIALPACS", "127.0.0.1", dicom_tls_server.dicom_port) == 0


def _dcmtk(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} not found: apt-get install dcmtk (scripts/apt-packages.txt)")
    return path


def test_dcmtk_peers_over_dicom_tls(dicom_tls_server: Served, pki: Pki, tmp_path: Path) -> None:
    port = str(_tls_port(dicom_tls_server))
    tls = ["+tls", str(pki.client_key), str(pki.client_cert), "+cf", str(pki.ca)]
    echo = subprocess.run(
        [_dcmtk("echoscu"), *tls, "-aec", "TRIALPACS", "127.0.0.1", port],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert echo.returncode == 0, echo.stdout + echo.stderr
    study = "1.2.826.0.1.3680043.8.498.772"
    path = tmp_path / "dcmtk.dcm"
    path.write_bytes(make_bytes(study=study))
    store = subprocess.run(
        [_dcmtk("storescu"), *tls, "-aec", "TRIALPACS", "127.0.0.1", port, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert store.returncode == 0, store.stdout + store.stderr
    assert _qido_count(dicom_tls_server, study) == 1
    # Without a client certificate (anonymous TLS), dcmtk is refused.
    anon = subprocess.run(
        [_dcmtk("echoscu"), "+tla", "+cf", str(pki.ca), "-aec", "TRIALPACS", "127.0.0.1", port],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert anon.returncode != 0
