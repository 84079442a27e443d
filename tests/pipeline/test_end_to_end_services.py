"""End to end on the production services: PostgreSQL + S3 (moto server) with the
embedded executor, Celery on RabbitMQ, and a storage commitment request that
completes a series without waiting for the settle interval.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, evt
from pynetdicom.sop_class import StorageCommitmentPushModel  # type: ignore[attr-defined]

from pipeline.test_end_to_end import (
    celery_worker,
    check_published,
    pipeline_env,
    status,
    storescu,
    wait_published,
    write_series,
)
from support.services import (
    LiveServer,
    free_port,
    live_server,
    moto_s3,
    postgres_database,
    trialpacs_cmd,
)
from trials.support import config_yaml

pytestmark = pytest.mark.slow

LOCAL_Q_EU = """\
  - name: q-eu
    kind: local
    path: {path}
    region: eu-west
    purpose: identified
"""
S3_BACKENDS = """\
  - name: q-eu
    kind: s3
    bucket: quarantine-eu
    endpoint_url: {endpoint}
    s3_region: us-east-1
    region: eu-west
    purpose: identified
  - name: sponsor-eu
    kind: s3
    bucket: sponsor-eu
    prefix: onco1
    endpoint_url: {endpoint}
    s3_region: us-east-1
    region: eu-west
    purpose: deidentified
"""


def apply_text(data_dir: Path, env: dict[str, str], text: str) -> None:
    cfg = data_dir / "trials.yaml"
    cfg.write_text(text)
    full = {**os.environ, "TRIALPACS_DATA_DIR": str(data_dir), **env}
    res = subprocess.run(
        [*trialpacs_cmd(), "apply", str(cfg)], env=full, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr


def with_timepoint(folder: Path, timepoint: str) -> None:
    """The site's PACS sends the visit in the data (ClinicalTrialTimePointID)."""
    for path in folder.iterdir():
        ds = dcmread(path)
        ds.ClinicalTrialTimePointID = timepoint
        ds.save_as(path)


def bucket_keys(env: dict[str, str], bucket: str) -> list[str]:
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=env["TRIALPACS_S3_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys.extend(o["Key"] for o in page.get("Contents", []))
    return keys


def wait_jobs_done(server: LiveServer, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        st = status(server)
        if st["jobs"]["done"] >= 1 and st["jobs"]["pending"] == st["jobs"]["running"] == 0:
            return st
        assert time.monotonic() < deadline, st
        time.sleep(0.2)


def test_postgres_and_s3_with_the_embedded_executor(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with postgres_database() as db_url, moto_s3() as s3_env:
        env = pipeline_env(
            data_dir,
            TRIALPACS_PIPELINE_EXECUTOR="embedded",
            TRIALPACS_DATABASE_URL=db_url,
            **s3_env,
        )
        text = config_yaml(data_dir)
        local = LOCAL_Q_EU.format(path=data_dir / "q-eu")
        assert local in text
        text = text.replace(local, S3_BACKENDS.format(endpoint=s3_env["TRIALPACS_S3_ENDPOINT_URL"]))
        text = text.replace(
            "    deid_regions: [local, eu-west]\n",
            "    deid_regions: [local, eu-west]\n    publish_to: [sponsor-eu]\n",
        )
        apply_text(data_dir, env, text)
        study, _ = write_series(tmp_path / "in", 12)
        with_timepoint(tmp_path / "in", "W12")
        with live_server(data_dir, env, dicom=True) as server:
            storescu(server, tmp_path / "in")
            wait_published(server, 12, timeout=90)
            check_published(server, study, 12)
            st = wait_jobs_done(server)
            h = {**server.headers(), "Accept": "application/dicom+json"}
            by_visit = httpx.get(
                server.dicomweb + "/studies?ClinicalTrialTimePointID=W12", headers=h
            ).json()
            assert len(by_visit) == 1 and by_visit[0]["00120050"]["Value"] == ["W12"]
            assert (
                httpx.get(
                    server.dicomweb + "/studies?ClinicalTrialTimePointID=BL", headers=h
                ).json()
                == []
            )
        row = st["trials"][0]
        assert (row["trial"], row["site"], row["received_instances"]) == ("ONCO1", "S01", 12)
        assert row["published_series"] == 1 and row["timepoints"] == {"W12": 1}
        # Identified blobs in the site's bucket, de-identified in the archive's and the
        # sponsor's; nothing identified on local disk.
        assert len(bucket_keys(s3_env, "quarantine-eu")) == 12
        assert len(bucket_keys(s3_env, s3_env["TRIALPACS_S3_BUCKET"])) == 12
        copies = bucket_keys(s3_env, "sponsor-eu")
        assert len(copies) == 12 and all(k.startswith("onco1/") for k in copies)
        assert study not in " ".join(copies)
        assert not (data_dir / "q-eu").exists() and not (data_dir / "quarantine").exists()


def test_celery_on_rabbitmq(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    env = pipeline_env(
        data_dir,
        TRIALPACS_PIPELINE_EXECUTOR="celery",
        TRIALPACS_CELERY_BROKER_URL="amqp://guest:guest@127.0.0.1:5672//",
        TRIALPACS_CELERY_QUEUE=f"trialpacs-test-{uuid.uuid4().hex[:8]}",
    )
    apply_text(data_dir, env, config_yaml(data_dir))
    study, _ = write_series(tmp_path / "in", 12)
    with (
        live_server(data_dir, env, dicom=True) as server,
        celery_worker(server.env, tmp_path / "worker.log"),
    ):
        storescu(server, tmp_path / "in")
        wait_published(server, 12, timeout=90)
        check_published(server, study, 12)
        st = wait_jobs_done(server)
    assert st["jobs"]["needs_attention"] == 0 and st["trials"][0]["published_series"] == 1


@contextlib.contextmanager
def commitment_listener(port: int) -> Iterator[list[Dataset]]:
    """The site PACS's storage commitment SCU, which receives the N-EVENT-REPORT."""
    reports: list[Dataset] = []

    def on_report(event: evt.Event) -> int:
        reports.append(event.event_information)
        return 0

    listener = AE(ae_title="PACS_S01")
    listener.add_supported_context(StorageCommitmentPushModel, scu_role=True, scp_role=True)
    server = listener.start_server(
        ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_N_EVENT_REPORT, on_report)]
    )
    assert server is not None
    try:
        yield reports
    finally:
        server.shutdown()


def test_storage_commitment_completes_the_series_at_once(tmp_path: Path) -> None:
    """With a 10-minute settle interval, only the commitment request can start the job."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    env = pipeline_env(data_dir, TRIALPACS_SERIES_SETTLE_SECONDS="600")
    report_port = free_port()
    apply_text(data_dir, env, config_yaml(data_dir).replace("port: 11113", f"port: {report_port}"))
    study, sops = write_series(tmp_path / "in", 6)
    sop_class = str(dcmread(next((tmp_path / "in").iterdir())).SOPClassUID)
    with live_server(data_dir, env, dicom=True) as server, commitment_listener(report_port) as got:
        storescu(server, tmp_path / "in")
        time.sleep(2)
        assert status(server)["jobs"]["pending"] == 0  # still settling: nothing queued
        request = Dataset()
        request.TransactionUID = generate_uid()
        items = []
        for sop in sops:
            item = Dataset()
            item.ReferencedSOPClassUID = sop_class
            item.ReferencedSOPInstanceUID = sop
            items.append(item)
        request.ReferencedSOPSequence = items
        ae = AE(ae_title="PACS_S01")
        ae.add_requested_context(StorageCommitmentPushModel)
        assert server.dicom_port
        assoc = ae.associate("127.0.0.1", server.dicom_port, ae_title="ONCO1_S01")
        assert assoc.is_established
        try:
            reply, _ = assoc.send_n_action(
                request, 1, StorageCommitmentPushModel, "1.2.840.10008.1.20.1.1"
            )
        finally:
            assoc.release()
        assert reply.Status == 0x0000
        started = time.monotonic()
        wait_published(server, 6, timeout=60)
        check_published(server, study, 6)
        assert time.monotonic() - started < 30
        deadline = time.monotonic() + 20
        while not got:
            assert time.monotonic() < deadline, "no N-EVENT-REPORT"
            time.sleep(0.1)
    committed = {i.ReferencedSOPInstanceUID for i in got[0].ReferencedSOPSequence}
    assert committed == set(sops)
