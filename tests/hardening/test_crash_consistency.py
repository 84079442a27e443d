"""SIGKILL the server at random moments during concurrent STOW-RS and C-STORE ingest.

After each kill the server is restarted on the same data and must show:
every acknowledged instance is indexed and its bytes are intact; every
instance the index shows (acknowledged or not: the kill may land between the
commit and the answer) is complete; nothing else is visible. Bounded: a few
rounds of at most a few seconds of ingest each (about a minute per backend).
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, _config

from dicomfactory import MR_STORAGE, make_bytes
from hardening.servers import Served, served
from support.services import postgres_database
from trialpacs.dicom.parse import parse_part10
from trialpacs.web import multipart

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ROUNDS = 3
SEED = int(time.time())  # printed on failure so a run can be replayed


@dataclass
class Sent:
    study: str
    series: str
    sop: str
    digest: str  # content digest (data set without file meta)
    exact: str | None  # STOW: sha256 of the bytes after the preamble, stored as sent


@dataclass
class Ledger:
    lock: threading.Lock = field(default_factory=threading.Lock)
    attempted: dict[str, Sent] = field(default_factory=dict)
    acked: set[str] = field(default_factory=set)

    def attempt(self, sent: Sent) -> None:
        with self.lock:
            self.attempted[sent.sop] = sent

    def ack(self, sop: str) -> None:
        with self.lock:
            self.acked.add(sop)


def _instance(study: str, series: str, n: int) -> tuple[bytes, Sent, bool]:
    sop = generate_uid()
    data = make_bytes(study=study, series=series, sop=sop, rows=16, cols=16, instance_number=n)
    parsed = parse_part10(data)
    exact = hashlib.sha256(data[128:]).hexdigest()
    return data, Sent(study, series, sop, parsed.content_digest(), exact), True


def stow_client(server: Served, ledger: Ledger, stop: threading.Event, batch: int) -> None:
    study, series = generate_uid(), generate_uid()
    n = 0
    with httpx.Client(base_url=server.url, headers=server.headers(), timeout=10) as client:
        while not stop.is_set():
            items = []
            for _ in range(batch):
                n += 1
                items.append(_instance(study, series, n))
            for _, sent, _ in items:
                ledger.attempt(sent)
            boundary = multipart.new_boundary()
            body = b"".join(
                multipart.stream([("application/dicom", data) for data, _, _ in items], boundary)
            )
            try:
                rsp = client.post(
                    "/dicomweb/studies",
                    content=body,
                    headers={"Content-Type": multipart.content_type(boundary, "application/dicom")},
                )
            except httpx.HTTPError:
                return  # the server died: nothing of this request was acknowledged
            if rsp.status_code != 200:
                return
            for _, sent, _ in items:
                ledger.ack(sent.sop)


def cstore_client(server: Served, ledger: Ledger, stop: threading.Event, folder: Path) -> None:
    _config.STORE_SEND_CHUNKED_DATASET = True  # send the file's data set bytes as they are
    ae = AE(ae_title="CRASHSCU")
    ae.add_requested_context(MR_STORAGE, ExplicitVRLittleEndian)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    try:
        assoc = ae.associate("127.0.0.1", server.dicom_port, ae_title="TRIALPACS")
    except Exception:
        return
    if not assoc.is_established:
        return
    study, series = generate_uid(), generate_uid()
    n = 0
    try:
        while not stop.is_set() and assoc.is_established:
            n += 1
            data, sent, _ = _instance(study, series, n)
            sent.exact = None  # C-STORE: our meta header + the received data set
            path = folder / f"{sent.sop}.dcm"
            path.write_bytes(data)
            ledger.attempt(sent)
            try:
                rsp = assoc.send_c_store(path)
            except Exception:
                return
            if "Status" in rsp and int(rsp.Status) == 0:
                ledger.ack(sent.sop)
            else:
                return
    finally:
        if assoc.is_established:
            assoc.abort()


def visible_instances(server: Served) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    with server.client() as c:
        offset = 0
        while True:
            rsp = c.get("/dicomweb/instances", params={"limit": 1000, "offset": offset})
            if rsp.status_code == 204:
                break
            assert rsp.status_code == 200, rsp.text
            rows = rsp.json()
            for row in rows:
                sop = row["00080018"]["Value"][0]
                out[sop] = (row["0020000D"]["Value"][0], row["0020000E"]["Value"][0])
            if len(rows) < 1000:
                break
            offset += len(rows)
    return out


def retrieve(client: httpx.Client, study: str, series: str, sop: str) -> httpx.Response:
    return client.get(
        "/wado",
        params={
            "requestType": "WADO",
            "studyUID": study,
            "seriesUID": series,
            "objectUID": sop,
            "contentType": "application/dicom",
        },
    )


def check(server: Served, ledger: Ledger) -> None:
    visible = visible_instances(server)
    missing = ledger.acked - visible.keys()
    assert not missing, f"acknowledged but not indexed after the crash: {sorted(missing)[:5]}"
    strangers = visible.keys() - ledger.attempted.keys()
    assert not strangers, f"indexed but never sent: {sorted(strangers)[:5]}"
    with server.client() as c:
        for sop, (study, series) in visible.items():
            sent = ledger.attempted[sop]
            rsp = retrieve(c, study, series, sop)
            assert rsp.status_code == 200, f"{sop} is indexed but not retrievable: {rsp.text}"
            parsed = parse_part10(rsp.content)
            assert parsed.content_digest() == sent.digest, f"{sop}: stored bytes differ"
            if sent.exact is not None:
                assert hashlib.sha256(rsp.content[128:]).hexdigest() == sent.exact
        # Unacknowledged and not indexed: no half-instance behind the index's back.
        for sop in list(ledger.attempted.keys() - visible.keys())[:50]:
            sent = ledger.attempted[sop]
            assert retrieve(c, sent.study, sent.series, sop).status_code == 404


def crash_loop(server: Served, tmp: Path) -> Ledger:
    rng = random.Random(SEED)
    ledger = Ledger()
    for round_no in range(ROUNDS):
        stop = threading.Event()
        folder = tmp / f"round{round_no}"
        folder.mkdir()
        threads = [
            threading.Thread(target=stow_client, args=(server, ledger, stop, 1)),
            threading.Thread(target=stow_client, args=(server, ledger, stop, 4)),
            threading.Thread(target=cstore_client, args=(server, ledger, stop, folder)),
            threading.Thread(target=cstore_client, args=(server, ledger, stop, folder)),
        ]
        for t in threads:
            t.start()
        time.sleep(rng.uniform(0.5, 2.5))
        server.kill()
        stop.set()
        for t in threads:
            t.join(30)
        server.start()
        check(server, ledger)
    return ledger


@pytest.fixture(params=["sqlite", "postgresql"])
def backend_env(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    if request.param == "sqlite":
        yield {}
        return
    with postgres_database() as url:
        yield {"TRIALPACS_DATABASE_URL": url}


def test_sigkill_during_ingest_loses_nothing_acknowledged(
    tmp_path: Path, backend_env: dict[str, str]
) -> None:
    print(f"crash loop seed {SEED}")
    with served(tmp_path / "data", backend_env) as server:
        ledger = crash_loop(server, tmp_path)
    assert len(ledger.acked) > 20, "too little was acknowledged for the test to mean anything"
    assert ledger.attempted.keys() - ledger.acked, "no kill landed mid-request"
