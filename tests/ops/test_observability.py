"""Metrics for an authorised scraper, readiness, and JSON logs without PHI."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import psycopg
import pytest
from fastapi.testclient import TestClient
from pydicom.uid import generate_uid

from dicomfactory import make_bytes
from support.services import (
    PG_ADMIN_URL,
    live_server,
    moto_s3,
    postgres_database,
    trialpacs_cmd,
)
from trialpacs.access.apikeys import create_key
from trialpacs.archive import Archive
from trialpacs.ingest.store import StoreOutcome, store_many
from trialpacs.ops.logs import JsonFormatter, scrub
from trialpacs.settings import load_settings
from trialpacs.web.app import create_app


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    arch = Archive.open(load_settings(None, data_dir=tmp_path, metrics_cache_seconds=0))
    yield arch
    arch.close()


def _metric(text: str, name: str, labels: str = "") -> float:
    pattern = re.escape(name) + (r"\{" + re.escape(labels) + r"\}" if labels else "") + r" (\S+)"
    match = re.search(r"^" + pattern + "$", text, re.M)
    assert match, f"{name}{{{labels}}} not in metrics"
    return float(match.group(1))


def test_metrics_answer_only_a_scraper_with_the_metrics_scope(archive: Archive) -> None:
    scraper = create_key(archive.db, "prometheus", scopes=["metrics"])
    viewer_key = create_key(archive.db, "viewer-svc", scopes=["dicomweb"])  # admin, wrong scope
    reader = create_key(archive.db, "reader-svc", grants=["reader@T1"], scopes=["*"])
    client = TestClient(create_app(archive))

    def get(key: str | None) -> httpx.Response:
        return client.get("/metrics", headers={"Authorization": f"Bearer {key}"} if key else {})

    r = get(scraper)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert "trialpacs_http_requests_total" in r.text
    assert get(None).status_code == 401
    assert get(viewer_key).status_code == 404 == get(reader).status_code
    # the scraper's key is good for nothing else
    images = client.get("/dicomweb/studies", headers={"Authorization": f"Bearer {scraper}"})
    assert images.status_code == 200 and images.json() == []


def test_metrics_follow_ingest_and_requests(archive: Archive) -> None:
    scraper = create_key(archive.db, "prometheus", scopes=["metrics"])
    admin = create_key(archive.db, "admin-svc")
    client = TestClient(create_app(archive))
    study = generate_uid()
    data = [make_bytes(study=study, sop=generate_uid(), instance_number=i) for i in range(3)]
    assert all(isinstance(o, StoreOutcome) for o in store_many(archive, data))
    for _ in range(2):
        client.get(
            f"/dicomweb/studies/{study}/metadata", headers={"Authorization": f"Bearer {admin}"}
        )
    text = client.get("/metrics", headers={"Authorization": f"Bearer {scraper}"}).text
    assert _metric(text, "trialpacs_instances_stored_total", 'collection="published"') == 3
    assert _metric(text, "trialpacs_studies", 'collection="published"') == 1
    assert _metric(text, "trialpacs_storage_bytes", 'store="published"') == sum(map(len, data))
    assert _metric(text, "trialpacs_pipeline_queue_depth") == 0
    assert _metric(text, "trialpacs_storage_free_bytes") > 0
    # by route template: a study UID never becomes a label value
    labels = 'method="GET",route="/dicomweb/studies/{study}/metadata",status="200"'
    assert _metric(text, "trialpacs_http_requests_total", labels) == 2
    assert study not in text
    assert "trialpacs_http_request_duration_seconds_bucket" in text


def test_ready_when_database_and_store_answer(archive: Archive) -> None:
    r = TestClient(create_app(archive)).get("/ready")  # no credentials: a probe
    assert r.status_code == 200
    assert r.json() == {"status": "ready", "checks": {"database": "ok", "storage": "ok"}}


@pytest.mark.postgres
def test_not_ready_when_the_database_is_gone(tmp_path: Path) -> None:
    with postgres_database() as url:
        arch = Archive.open(load_settings(None, data_dir=tmp_path, database_url=url))
        client = TestClient(create_app(arch))
        assert client.get("/ready").status_code == 200
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
        r = client.get("/ready")
        assert r.status_code == 503
        assert r.json()["checks"]["database"].startswith("unreachable")
        assert r.json()["checks"]["storage"] == "ok"
        assert client.get("/health").status_code == 200  # alive, just not ready
        arch.close()


@pytest.mark.s3
def test_not_ready_when_the_object_store_is_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with moto_s3() as env:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
            monkeypatch.setenv(name, env[name])
        arch = Archive.open(
            load_settings(
                None,
                data_dir=tmp_path,
                storage="s3",
                s3_bucket=env["TRIALPACS_S3_BUCKET"],
                s3_endpoint_url=env["TRIALPACS_S3_ENDPOINT_URL"],
                s3_region=env["TRIALPACS_S3_REGION"],
            )
        )
        client = TestClient(create_app(arch))
        assert client.get("/ready").status_code == 200
    t0 = time.monotonic()
    r = client.get("/ready")  # moto's server has stopped
    assert time.monotonic() - t0 < 10  # a probe answers quickly, whatever boto3 retries
    assert r.status_code == 503
    assert r.json()["checks"] == {"database": "ok", "storage": r.json()["checks"]["storage"]}
    assert r.json()["checks"]["storage"].startswith("unreachable")
    arch.close()


def test_json_formatter_scrubs_names_dates_and_query_values() -> None:
    record = logging.LogRecord(
        "trialpacs.test", logging.WARNING, __file__, 1,
        "refused %s born %s via GET /dicomweb/studies?PatientName=ZEBRA*&limit=5",
        ("ZEBRAFINCH^QUILLON^J", "19541231"), None,
    )  # fmt: skip
    record.status = 409  # an allowed field
    record.patient = "ZEBRAFINCH^QUILLON"  # an unknown field: never written
    try:
        raise ValueError("bad value for PatientName: ZEBRAFINCH^QUILLON")
    except ValueError:
        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    entry = orjson.loads(line)
    assert "ZEBRA" not in line and "QUILLON" not in line and "19541231" not in line
    assert entry["level"] == "warning" and entry["status"] == 409
    assert "PatientName=<redacted>" in entry["message"]
    assert entry["error"]["type"] == "ValueError" and entry["error"]["at"]
    # UIDs stay (operations follow instances by them); they are not dates
    assert scrub("stored 1.2.840.19541231.5") == "stored 1.2.840.19541231.5"


@pytest.mark.slow
def test_stow_of_a_named_patient_leaves_no_name_in_json_logs(tmp_path: Path) -> None:
    env = {"TRIALPACS_LOG_FORMAT": "json"}
    with live_server(tmp_path, env, args=["--log-level", "debug"]) as srv:
        study = generate_uid()
        good = make_bytes(study=study, patient_name="ZEBRAFINCH^QUILLON", patient_id="QX-77")
        bad = good[:-7]  # truncated: refused, which logs
        for part in (good, bad):
            body = b"--b\r\nContent-Type: application/dicom\r\n\r\n" + part + b"\r\n--b--\r\n"
            httpx.post(
                srv.dicomweb + "/studies",
                content=body,
                headers={
                    **srv.headers(),
                    "Content-Type": 'multipart/related; type="application/dicom"; boundary=b',
                },
                timeout=30,
            )
        q = httpx.get(
            srv.dicomweb + "/studies", params={"PatientName": "ZEBRA*"}, headers=srv.headers()
        )
        assert q.status_code == 200 and len(q.json()) == 1  # the name is stored and found
        srv.stop()
    text = srv.log.read_text()
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines, "the server wrote no log lines"
    for line in lines:
        assert isinstance(orjson.loads(line), dict), line
    assert "ZEBRAFINCH" not in text and "QUILLON" not in text and "QX-77" not in text


@pytest.mark.slow
def test_celery_worker_logs_json(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "TRIALPACS_DATA_DIR": str(tmp_path),
        "TRIALPACS_LOG_FORMAT": "json",
        "TRIALPACS_CELERY_QUEUE": f"trialpacs-json-{uuid.uuid4().hex[:8]}",
    }
    log = tmp_path / "worker.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [*trialpacs_cmd(), "worker", "--concurrency", "1"], env=env, stdout=fh,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while b"ready." not in log.read_bytes():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(30)
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    # Celery prints its shutdown notice itself (no logger): the only plain lines allowed
    plain = [line for line in lines if not line.startswith("{")]
    assert all("shutdown" in line.lower() for line in plain), plain
    entries = [orjson.loads(line) for line in lines if line.startswith("{")]
    assert any(e["logger"].startswith("celery") for e in entries)
