"""Resource limits against hostile clients: each gets a clear refusal naming the
limit, and the server keeps answering others (a concurrent /health is fast).

One live server with small limits so the tests stay quick; the same
settings scale to production values (docs/hardening.md).
"""

from __future__ import annotations

import io
import socket
import subprocess
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE

from dicomfactory import make_bytes, make_dataset, to_bytes
from hardening.servers import Served, served
from support.services import trialpacs_cmd
from trialpacs.dimse import scu
from trialpacs.web import multipart

pytestmark = pytest.mark.slow

LIMITS = {
    "TRIALPACS_MAX_REQUEST_BYTES": str(3_000_000),
    "TRIALPACS_MAX_MULTIPART_PARTS": "20",
    "TRIALPACS_HTTP_HEADER_TIMEOUT": "2",
    "TRIALPACS_HTTP_BODY_IDLE_TIMEOUT": "2",
    "TRIALPACS_DICOM_ACSE_TIMEOUT": "2",
    "TRIALPACS_DICOM_NETWORK_TIMEOUT": "5",
}
HEALTHY_WITHIN = 2.0  # seconds; generous for a loaded 2-core CI machine


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served(tmp_path_factory.mktemp("limits"), LIMITS) as live:
        yield live


def health_is_fast(server: Served) -> float:
    start = time.monotonic()
    rsp = httpx.get(server.url + "/health", timeout=10)
    elapsed = time.monotonic() - start
    assert rsp.status_code == 200
    assert elapsed < HEALTHY_WITHIN, f"/health took {elapsed:.2f}s"
    return elapsed


def stow(server: Served, bodies: list[bytes]) -> httpx.Response:
    boundary = multipart.new_boundary()
    wire = b"".join(multipart.stream([("application/dicom", b) for b in bodies], boundary))
    with server.client(timeout=120) as c:
        return c.post(
            "/dicomweb/studies",
            content=wire,
            headers={"Content-Type": multipart.content_type(boundary, "application/dicom")},
        )


def test_request_body_over_the_limit_is_refused(server: Served) -> None:
    rsp = stow(server, [b"\0" * 3_100_000])
    assert rsp.status_code == 413
    assert "exceeds the limit of 3000000 bytes" in rsp.text

    # Without Content-Length (chunked), the limit holds while reading.
    def chunks() -> Iterator[bytes]:
        boundary = "chunky"
        yield b"--chunky\r\nContent-Type: application/dicom\r\n\r\n"
        for _ in range(40):
            yield b"\0" * 100_000
        yield b"\r\n--" + boundary.encode() + b"--\r\n"

    with server.client() as c:
        rsp = c.post(
            "/dicomweb/studies",
            content=chunks(),
            headers={"Content-Type": multipart.content_type("chunky", "application/dicom")},
        )
    assert rsp.status_code == 413
    assert "exceeds the limit" in rsp.text
    health_is_fast(server)


def test_too_many_multipart_parts_are_refused(server: Served) -> None:
    rsp = stow(server, [b"x"] * 21)
    assert rsp.status_code == 413
    assert "more than 20 parts (max_multipart_parts)" in rsp.text


def test_deeply_nested_sequences_are_refused_by_name(server: Served) -> None:
    ds = make_dataset()
    inner = Dataset()
    inner.CodeMeaning = "bottom"
    for _ in range(40):
        outer = Dataset()
        outer.ContentSequence = Sequence([inner])
        inner = outer
    ds.ContentSequence = Sequence([inner])
    rsp = stow(server, [to_bytes(ds)])
    assert rsp.status_code == 409
    assert "nested deeper than 16 levels" in rsp.headers.get("Warning", "")
    health_is_fast(server)


def test_ten_thousand_frames_are_refused_while_health_answers(server: Served) -> None:
    """The default max_frames (5000) refuses a 10,000-frame object on both routes."""
    ds = make_dataset(rows=8, cols=8, frames=10_000, study="1.2.826.0.1.3680043.8.498.9")
    data = to_bytes(ds)
    timings: list[float] = []
    done = threading.Event()

    def probe() -> None:
        while not done.is_set():
            timings.append(health_is_fast(server))
            time.sleep(0.05)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        rsp = stow(server, [data])
        ae = AE(ae_title="LIMITS")
        ae.add_requested_context(ds.SOPClassUID, ExplicitVRLittleEndian)
        assoc = ae.associate("127.0.0.1", server.dicom_port, ae_title="TRIALPACS")
        assert assoc.is_established
        try:
            status = assoc.send_c_store(ds)
        finally:
            assoc.release()
    finally:
        done.set()
        prober.join()
    message = "instance has 10000 frames; the limit is 5000 (max_frames)"
    assert rsp.status_code == 409
    assert message in rsp.headers.get("Warning", "")
    assert status.Status == 0xC000
    assert status.ErrorComment == message
    with server.client() as c:
        found = c.get("/dicomweb/instances", params={"SOPInstanceUID": ds.SOPInstanceUID})
        assert found.status_code in (200, 204)
        assert found.status_code == 204 or found.json() == []
    assert timings, "the /health probe never ran"


def test_object_at_the_frame_limit_is_stored_and_served(server: Served) -> None:
    data = make_bytes(rows=8, cols=8, frames=5000, study="1.2.826.0.1.3680043.8.498.10")
    rsp = stow(server, [data])
    assert rsp.status_code == 200, rsp.headers.get("Warning")
    stored = rsp.json()["00081199"]["Value"][0]
    url = stored["00081190"]["Value"][0]
    with server.client() as c:
        path = url.split("/dicomweb", 1)[1]
        frame = c.get(
            f"/dicomweb{path}/frames/5000",
            headers={"Accept": 'multipart/related; type="application/octet-stream"'},
        )
        assert frame.status_code == 200
        assert len(frame.content) > 128  # 8x8x2 bytes + multipart framing
        beyond = c.get(f"/dicomweb{path}/frames/5001")
        assert beyond.status_code in (400, 404)
    health_is_fast(server)


def _slow_client(port: int, payload: bytes) -> bytes:
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    try:
        sock.sendall(payload)
        received = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                return received
            received += chunk
    finally:
        sock.close()


def test_slow_loris_headers_get_408_and_others_are_served(server: Served) -> None:
    results: list[bytes] = []
    partial = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: "  # headers never finish

    def run() -> None:
        results.append(_slow_client(server.http_port, partial))

    threads = [threading.Thread(target=run) for _ in range(30)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    health_is_fast(server)
    for t in threads:
        t.join(20)
    assert len(results) == 30
    for answer in results:
        assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
        assert b"http_header_timeout" in answer


def test_stalled_body_gets_408(server: Served) -> None:
    head = (
        b"POST /dicomweb/studies HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer " + server.token.encode() + b"\r\n"
        b'Content-Type: multipart/related; type="application/dicom"; boundary=b\r\n'
        b"Content-Length: 100000\r\n\r\n--b\r\n"
    )
    answer = _slow_client(server.http_port, head)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:120]
    assert b"http_body_idle_timeout" in answer
    health_is_fast(server)


def test_silent_dicom_connections_are_dropped_and_others_served(server: Served) -> None:
    socks = [socket.create_connection(("127.0.0.1", server.dicom_port)) for _ in range(5)]
    try:
        start = time.monotonic()
        assert scu.echo("LIMITS", "TRIALPACS", "127.0.0.1", server.dicom_port) == 0
        for sock in socks:
            sock.settimeout(15)
            while sock.recv(4096):  # an A-ABORT may come first; then the close
                pass
        waited = time.monotonic() - start
        assert waited < 12, f"silent DICOM clients were held {waited:.1f}s (acse timeout 2s)"
    finally:
        for sock in socks:
            sock.close()


def test_zip_bomb_import_is_refused_by_name(tmp_path: Path, server: Served) -> None:
    bomb = tmp_path / "bomb.zip"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.dcm", b"\0" * 50_000_000)
    bomb.write_bytes(buf.getvalue())
    out = subprocess.run(
        [*trialpacs_cmd(), "import", str(bomb)],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    text = out.stdout + out.stderr
    assert "zip bomb" in text, text[-2000:]
    health_is_fast(server)
