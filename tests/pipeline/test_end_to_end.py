"""End to end: storescu to a trial's AE title, de-identified study visible over DICOMweb.

Runs on both executors (embedded worker pool; Celery workers on the machine's
Redis), then kills the server with SIGKILL mid-job and checks the job resumes
with nothing lost or duplicated.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dicomfactory import make_dataset, to_bytes
from support.services import LiveServer, live_server, trialpacs_cmd
from trials.support import config_yaml

pytestmark = pytest.mark.slow
HERE = Path(__file__).resolve().parent
PHI = ("SMITH", "MRN12345", "HOUSE", "ACC1")


def write_series(folder: Path, n: int) -> tuple[str, list[str]]:
    folder.mkdir(parents=True, exist_ok=True)
    first = make_dataset(patient_name="SMITH^JOHN", patient_id="MRN12345")
    study, series = str(first.StudyInstanceUID), str(first.SeriesInstanceUID)
    sops = []
    for i in range(n):
        ds = (
            first
            if i == 0
            else make_dataset(
                study=study,
                series=series,
                instance_number=i + 1,
                patient_name="SMITH^JOHN",
                patient_id="MRN12345",
            )
        )
        (folder / f"{i:04d}.dcm").write_bytes(to_bytes(ds))
        sops.append(str(ds.SOPInstanceUID))
    return study, sops


def storescu(server: LiveServer, folder: Path, called: str = "ONCO1_S01") -> None:
    assert server.dicom_port
    res = subprocess.run(
        [
            "storescu",
            "-aet",
            "PACS_S01",
            "-aec",
            called,
            "+sd",
            "127.0.0.1",
            str(server.dicom_port),
            str(folder),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr


def pipeline_env(data_dir: Path, **extra: str) -> dict[str, str]:
    return {
        "TRIALPACS_SERIES_SETTLE_SECONDS": "1",
        "TRIALPACS_JOB_LEASE_SECONDS": "3",
        "TRIALPACS_JOB_BACKOFF_SECONDS": "0.5",
        "TRIALPACS_DEID_SECRET": "e2e-test-secret",
        **extra,
    }


def apply_config(data_dir: Path, env: dict[str, str]) -> None:
    cfg = data_dir / "trials.yaml"
    cfg.write_text(config_yaml(data_dir))
    full = {**os.environ, "TRIALPACS_DATA_DIR": str(data_dir), **env}
    res = subprocess.run(
        [*trialpacs_cmd(), "apply", str(cfg)], env=full, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr


def status(server: LiveServer) -> dict[str, Any]:
    """``trialpacs status --json`` against the server's data directory."""
    res = subprocess.run(
        [*trialpacs_cmd(), "status", "--json"], env=server.env, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    data: dict[str, Any] = json.loads(res.stdout)
    return data


def query(data_dir: Path, sql: str) -> list[tuple[Any, ...]]:
    """Read the SQLite index directly (WAL allows it next to the server)."""
    with contextlib.closing(sqlite3.connect(data_dir / "index.sqlite3", timeout=10)) as db:
        return db.execute(sql).fetchall()


def published_count(server: LiveServer) -> int:
    h = {**server.headers(), "Accept": "application/dicom+json"}
    res = httpx.get(server.dicomweb + "/instances", headers=h, timeout=10)
    res.raise_for_status()
    return len(res.json())


def wait_published(server: LiveServer, n: int, timeout: float = 120) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if published_count(server) >= n:
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"not published within {timeout}s: {status(server)}")


def check_published(server: LiveServer, study: str, n: int) -> None:
    h = {**server.headers(), "Accept": "application/dicom+json"}
    base = server.dicomweb
    studies = httpx.get(base + "/studies", headers=h).json()
    assert len(studies) == 1
    (pub,) = studies
    assert pub["00100020"]["Value"] == ["S01-0001"]
    assert pub["00100010"]["Value"] == [{"Alphabetic": "S01-0001"}]
    new_uid = pub["0020000D"]["Value"][0]
    assert new_uid != study and pub["00201208"]["Value"] == [n]
    meta = httpx.get(f"{base}/studies/{new_uid}/metadata", headers=h, timeout=30)
    assert meta.status_code == 200 and len(meta.json()) == n
    for word in (*PHI, study):
        assert word not in meta.text
    assert '"ONCO1"' in meta.text  # Clinical Trial Protocol ID
    # The identified study is not there, by any route.
    assert httpx.get(f"{base}/studies/{study}/metadata", headers=h).status_code == 404
    assert httpx.get(f"{base}/studies?StudyInstanceUID={study}", headers=h).json() == []
    inst = httpx.get(f"{base}/instances", headers=h).json()
    assert len(inst) == n and len({i["00080018"]["Value"][0] for i in inst}) == n


@contextlib.contextmanager
def celery_worker(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [*trialpacs_cmd(), "worker", "--concurrency", "2", "--pool", "prefork"],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.mark.parametrize("executor", ["embedded", "celery"])
def test_storescu_to_trial_ae_publishes_deidentified(tmp_path: Path, executor: str) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    extra = {"TRIALPACS_PIPELINE_EXECUTOR": executor}
    if executor == "celery":
        extra["TRIALPACS_CELERY_BROKER_URL"] = "redis://127.0.0.1:6379/0"
        extra["TRIALPACS_CELERY_QUEUE"] = f"trialpacs-test-{uuid.uuid4().hex[:8]}"
    env = pipeline_env(data_dir, **extra)
    apply_config(data_dir, env)
    study, _ = write_series(tmp_path / "in", 12)
    with live_server(data_dir, env, dicom=True) as server:
        worker: Any = contextlib.nullcontext()
        if executor == "celery":
            worker = celery_worker(server.env, tmp_path / "worker.log")
        with worker:
            storescu(server, tmp_path / "in")
            seconds = wait_published(server, 12, timeout=60)
            check_published(server, study, 12)
            deadline = time.monotonic() + 20
            while query(data_dir, "SELECT state FROM jobs") != [("done",)]:
                assert time.monotonic() < deadline, status(server)
                time.sleep(0.2)
            row = status(server)["trials"][0]
            assert row["received_instances"] == 12 and row["needs_attention_series"] == 0
    assert seconds < 30


def test_sigkill_mid_job_resumes_without_loss_or_duplicates(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    env = pipeline_env(
        data_dir,
        TRIALPACS_QC_HOOK="slowqc:hook",
        SLOWQC_SECONDS="4",
        PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    )
    apply_config(data_dir, env)
    study, _ = write_series(tmp_path / "in", 20)
    with live_server(data_dir, env, dicom=True) as server:
        storescu(server, tmp_path / "in")
        deadline = time.monotonic() + 60
        while query(data_dir, "SELECT state FROM jobs") != [("running",)]:
            assert time.monotonic() < deadline, status(server)
            time.sleep(0.1)
        time.sleep(1.0)  # de-identified and verified, now in the (slow) QC step
        server.proc.kill()
        server.proc.wait(10)
    with live_server(data_dir, env, dicom=True) as server:
        wait_published(server, 20, timeout=90)
        check_published(server, study, 20)
        deadline = time.monotonic() + 20
        while query(data_dir, "SELECT state FROM jobs") != [("done",)]:
            assert time.monotonic() < deadline, status(server)
            time.sleep(0.2)
        st = status(server)
        assert st["jobs"]["done"] == 1 and st["jobs"]["needs_attention"] == 0
        assert st["trials"][0]["published_series"] == 1
    ((attempts,),) = query(data_dir, "SELECT attempts FROM jobs")
    counts = query(
        data_dir,
        "SELECT collection, COUNT(*) FROM instances JOIN studies "
        "ON studies.pk = instances.study_pk GROUP BY collection ORDER BY collection",
    )
    assert attempts == 2  # the killed run, then the resumed one
    assert counts == [("published", 20), ("quarantine", 20)]
