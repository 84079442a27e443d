"""Scale-out on loopback: two servers, two Celery workers, one PostgreSQL, one S3.

The topology of docs/operations.md, small: ``trialpacs serve`` twice (HTTP and
DIMSE each on their own ports, separate data directories, so nothing is
shared but the database, the object store and the broker), ``trialpacs
worker`` twice on the machine's Redis, a fresh PostgreSQL database and moto's
S3 server holding both the published store and the site's identified store.
One study arrives through both servers at once (STOW-RS to one, C-STORE to
the other, overlapping instances sent to both), another only by C-STORE.
Every instance must be indexed once, published once and retrievable from
either server.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import psycopg
import pytest

from dicomfactory import make_dataset, to_bytes
from support.services import LiveServer, live_server, moto_s3, postgres_database, trialpacs_cmd

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.s3]

CONFIG = """\
version: 1
regions:
  - id: eu-west
storage_backends:
  - name: q-eu
    kind: s3
    bucket: identified-eu
    endpoint_url: {endpoint}
    region: eu-west
    purpose: identified
profiles:
  - name: onco
    extends: trial
sites:
  - id: S01
    name: Charite
    region: eu-west
    identified_backend: q-eu
    hosts: [127.0.0.1]
    aes:
      - {{ae_title: PACS_S01, host: 127.0.0.1, port: 11113}}
trials:
  - id: ONCO1
    name: Oncology one
    profile: onco
    deid_regions: [local, eu-west]
    ae_title: ONCO1
    sites:
      - {{site: S01, ae_title: ONCO1_S01}}
"""


def _series(folder: Path, n: int, patient: str) -> tuple[str, list[bytes], list[str]]:
    first = make_dataset(patient_name=f"{patient}^X", patient_id=patient)
    study, series = str(first.StudyInstanceUID), str(first.SeriesInstanceUID)
    datas, sops = [], []
    for i in range(n):
        ds = first if i == 0 else make_dataset(
            study=study, series=series, instance_number=i + 1, patient_name=f"{patient}^X",
            patient_id=patient, value=i,
        )  # fmt: skip
        datas.append(to_bytes(ds))
        sops.append(str(ds.SOPInstanceUID))
    folder.mkdir(parents=True)
    return study, datas, sops


def _stow(server: LiveServer, datas: list[bytes]) -> None:
    for i in range(0, len(datas), 4):  # several requests, so they interleave with C-STORE
        body = b"".join(
            b"--b\r\nContent-Type: application/dicom\r\n\r\n" + d + b"\r\n"
            for d in datas[i : i + 4]
        )
        r = httpx.post(
            server.dicomweb + "/trials/ONCO1/sites/S01/studies",
            content=body + b"--b--\r\n",
            headers={
                **server.headers(),
                "Content-Type": 'multipart/related; type="application/dicom"; boundary=b',
            },
            timeout=60,
        )
        assert r.status_code == 200, r.text


def _storescu(server: LiveServer, folder: Path) -> None:
    res = subprocess.run(
        ["storescu", "-aet", "PACS_S01", "-aec", "ONCO1_S01", "+sd", "127.0.0.1",
         str(server.dicom_port), str(folder)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr


@contextlib.contextmanager
def _worker(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [*trialpacs_cmd(), "worker", "--concurrency", "1", "--pool", "prefork"],
            env=env, stdout=fh, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _sql(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        return conn.execute(sql).fetchall()


@pytest.mark.timeout(600)  # four processes starting on a shared machine
def test_two_servers_two_workers_share_postgres_s3_and_redis(tmp_path: Path) -> None:
    with postgres_database() as db_url, moto_s3() as s3_env:
        env = {
            **s3_env,
            "TRIALPACS_DATABASE_URL": db_url,
            "TRIALPACS_PIPELINE_EXECUTOR": "celery",
            "TRIALPACS_CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
            "TRIALPACS_CELERY_QUEUE": f"trialpacs-scale-{uuid.uuid4().hex[:8]}",
            "TRIALPACS_SERIES_SETTLE_SECONDS": "2",
            "TRIALPACS_JOB_LEASE_SECONDS": "10",
            "TRIALPACS_JOB_BACKOFF_SECONDS": "0.5",
            "TRIALPACS_DEID_SECRET": "scale-out-test-secret",
        }
        config = tmp_path / "trials.yaml"
        config.write_text(CONFIG.format(endpoint=s3_env["TRIALPACS_S3_ENDPOINT_URL"]))
        applied = subprocess.run(
            [*trialpacs_cmd(), "apply", str(config)],
            env={**os.environ, **env, "TRIALPACS_DATA_DIR": str(tmp_path / "admin")},
            capture_output=True, text=True,
        )  # fmt: skip
        assert applied.returncode == 0, applied.stderr

        both_study, both, both_sops = _series(tmp_path / "both", 16, "BOTH")
        only_study, only, only_sops = _series(tmp_path / "only", 8, "ONLY")
        # instances 0-9 by STOW to A, 6-15 by C-STORE to B (6-9 sent to both)
        for i, data in enumerate(both[6:]):
            (tmp_path / "both" / f"{i:03d}.dcm").write_bytes(data)
        for i, data in enumerate(only):
            (tmp_path / "only" / f"{i:03d}.dcm").write_bytes(data)
        expected = set(both_sops) | set(only_sops)
        for name in ("a", "b", "w1", "w2"):
            (tmp_path / name).mkdir()

        with (
            live_server(tmp_path / "a", env, dicom=True) as a,
            live_server(tmp_path / "b", env, dicom=True) as b,
            _worker({**a.env, "TRIALPACS_DATA_DIR": str(tmp_path / "w1")}, tmp_path / "w1.log"),
            _worker({**a.env, "TRIALPACS_DATA_DIR": str(tmp_path / "w2")}, tmp_path / "w2.log"),
        ):
            errors: list[BaseException] = []

            def run(fn: Any, *args: Any) -> threading.Thread:
                def target() -> None:
                    try:
                        fn(*args)
                    except BaseException as exc:  # reported below
                        errors.append(exc)

                t = threading.Thread(target=target)
                t.start()
                return t

            threads = [
                run(_stow, a, both[:10]),
                run(_storescu, b, tmp_path / "both"),
                run(_storescu, b, tmp_path / "only"),
            ]
            for t in threads:
                t.join(180)
            assert not errors, errors

            # indexed once: every identified instance exactly once, in its site's quarantine
            quarantined = _sql(
                db_url,
                "SELECT sop_uid FROM instances JOIN studies ON studies.pk = instances.study_pk "
                "WHERE collection = 'quarantine'",
            )
            assert sorted(r[0] for r in quarantined) == sorted(expected)

            deadline = time.monotonic() + 300
            while True:
                states = _sql(db_url, "SELECT state, published_instances FROM pipeline_series")
                if sorted(n for state, n in states if state == "published") == [8, 16]:
                    break
                assert time.monotonic() < deadline, (states, _sql(db_url, "SELECT * FROM jobs"))
                time.sleep(0.5)

            # published once: 24 de-identified instances, none twice, the jobs done
            published = _sql(
                db_url,
                "SELECT instances.sop_uid, instances.blob_key FROM instances JOIN studies "
                "ON studies.pk = instances.study_pk WHERE collection = 'published'",
            )
            assert len(published) == len(expected) == len({r[0] for r in published})
            assert not {r[0] for r in published} & expected  # new UIDs, nothing identified
            jobs = _sql(db_url, "SELECT state FROM jobs")
            assert jobs and all(state == "done" for (state,) in jobs), jobs
            # claimed by a worker (the servers only dispatch with pipeline_executor=celery)
            done = "SELECT locked_by FROM jobs WHERE state = 'done'"
            lockers = {r[0] for r in _sql(db_url, done)}
            assert lockers and all(lockers), lockers

            # the blobs are in S3: published and identified, one object per instance
            s3 = boto3.client(
                "s3",
                endpoint_url=s3_env["TRIALPACS_S3_ENDPOINT_URL"],
                region_name="us-east-1",
                aws_access_key_id=s3_env["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=s3_env["AWS_SECRET_ACCESS_KEY"],
            )
            keys = [o["Key"] for o in s3.list_objects_v2(
                Bucket=s3_env["TRIALPACS_S3_BUCKET"]).get("Contents", [])]  # fmt: skip
            assert sorted(keys) == sorted(r[1] for r in published)
            identified = s3.list_objects_v2(Bucket="identified-eu").get("KeyCount", 0)
            assert identified == len(expected)

            # retrievable from either server: QIDO lists the same, every instance from both
            lists = []
            for server in (a, b):
                h = {**server.headers(), "Accept": "application/dicom+json"}
                lists.append(httpx.get(server.dicomweb + "/instances", headers=h).json())
            assert lists[0] == lists[1] and len(lists[0]) == len(expected)
            for item in lists[0]:
                study = item["0020000D"]["Value"][0]
                series = item["0020000E"]["Value"][0]
                sop = item["00080018"]["Value"][0]
                path = f"/studies/{study}/series/{series}/instances/{sop}"
                bodies = []
                for server in (a, b):
                    r = httpx.get(
                        server.dicomweb + path,
                        headers={**server.headers(),
                                 "Accept": 'multipart/related; type="application/dicom"'},
                        timeout=30,
                    )  # fmt: skip
                    assert r.status_code == 200, (server.url, r.text[:200])
                    bodies.append(r.content.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n--", 1)[0])
                assert bodies[0] == bodies[1] and sop.encode() in bodies[0]
            # metrics are deployment-wide: either server reports what both ingested
            made = subprocess.run(
                [*trialpacs_cmd(), "token", "create", "--name", "prometheus", "--scope", "metrics"],
                env=a.env, capture_output=True, text=True, check=True,
            )  # fmt: skip
            scraper = {"Authorization": f"Bearer {made.stdout.strip().splitlines()[-1]}"}
            for server in (a, b):
                text = httpx.get(server.url + "/metrics", headers=scraper, timeout=30).text
                figures = {
                    line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
                    for line in text.splitlines()
                    if line.startswith(("trialpacs_instances", "trialpacs_pipeline"))
                }
                # the counters, not only the rows: an instance stored through both servers
                # at the same moment is counted once (psycopg rowcount regression)
                assert figures == {
                    'trialpacs_instances_stored_total{collection="published"}': 24,
                    'trialpacs_instances_stored_total{collection="quarantine"}': 24,
                    'trialpacs_pipeline_series{state="published"}': 2,
                    "trialpacs_pipeline_published_instances_total": 24,
                    "trialpacs_pipeline_queue_depth": 0,
                }, (server.url, figures)
            for study_uid in (both_study, only_study):  # identified originals never served
                h = {**a.headers(), "Accept": "application/dicom+json"}
                assert httpx.get(f"{b.dicomweb}/studies/{study_uid}/metadata",
                                 headers=h).status_code == 404  # fmt: skip
