"""S3 destinations (moto in server mode): allowed only for the trial's regions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from fastapi.testclient import TestClient

from exports.support import DATA_MANAGER, World, build_world
from support.services import moto_s3
from trialpacs.access.apikeys import create_key
from trialpacs.audit.chain import Filter, query
from trialpacs.exports.cohort import CohortDefinition
from trialpacs.exports.destinations import DestinationRefused
from trialpacs.exports.job import run_export
from trialpacs.exports.saved import save_cohort
from trialpacs.web.app import create_app

BACKENDS = """\
  - {{name: exports-eu, kind: s3, region: eu, purpose: deidentified, bucket: exports-eu,
      endpoint_url: "{url}", s3_region: us-east-1}}
  - {{name: exports-us, kind: s3, region: us, purpose: deidentified, bucket: exports-us,
      endpoint_url: "{url}", s3_region: us-east-1}}
  - {{name: raw-eu, kind: s3, region: eu, purpose: identified, bucket: raw-eu,
      endpoint_url: "{url}", s3_region: us-east-1}}
"""


@pytest.fixture
def s3_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[World, object]]:
    with moto_s3() as env:
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
            monkeypatch.setenv(key, env[key])
        url = env["TRIALPACS_S3_ENDPOINT_URL"]
        client = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
        for bucket in ("exports-eu", "exports-us", "raw-eu"):
            client.create_bucket(Bucket=bucket)
        world = build_world(tmp_path, extra_backends=BACKENDS.format(url=url))
        try:
            yield world, client
        finally:
            world.archive.close()


def _keys(client: object, bucket: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)  # type: ignore[attr-defined]
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


@pytest.mark.slow
def test_export_to_an_allowed_bucket_and_resume(
    s3_world: tuple[World, object], tmp_path: Path
) -> None:
    world, client = s3_world
    ref = save_cohort(world.archive.db, "mr", CohortDefinition("T1", modalities=("MR",)), "dm").ref
    result = run_export(world.archive, DATA_MANAGER, ref, "s3://exports-eu/study-1")
    assert result.destination == "s3://exports-eu/study-1/"
    keys = _keys(client, "exports-eu")
    assert "study-1/manifest.csv" in keys and "study-1/SHA256SUMS" in keys
    assert sum(k.endswith(".dcm") for k in keys) == result.instances == 11
    # the same bytes as a local export of the same version
    local = tmp_path / "local"
    run_export(world.archive, DATA_MANAGER, ref, str(local))
    body = client.get_object(Bucket="exports-eu", Key="study-1/manifest.csv")["Body"].read()  # type: ignore[attr-defined]
    assert body == (local / "manifest.csv").read_bytes()
    # resume: nothing to upload again
    again = run_export(world.archive, DATA_MANAGER, ref, "s3://exports-eu/study-1")
    assert again.files_written == 0 and again.files_skipped == result.files_written


@pytest.mark.slow
@pytest.mark.parametrize(
    ("bucket", "reason"),
    [
        ("exports-us", "is in region us; trial T1 allows de-identified data only in: local, eu"),
        ("raw-eu", "is for identified data"),
        ("someone-elses", "not a configured storage backend"),
    ],
)
def test_buckets_outside_the_trials_regions_are_refused(
    s3_world: tuple[World, object], bucket: str, reason: str
) -> None:
    world, client = s3_world
    ref = save_cohort(world.archive.db, "all", CohortDefinition("T1"), "dm").ref
    with pytest.raises(DestinationRefused, match=reason):
        run_export(world.archive, DATA_MANAGER, ref, f"s3://{bucket}/x")
    if bucket != "someone-elses":
        assert _keys(client, bucket) == []
    (entry,) = query(world.archive.db, Filter(action="export.run"))
    assert entry["outcome"] == "denied" and reason.split(";")[0] in entry["reason"]


@pytest.mark.slow
def test_api_refuses_a_bucket_of_another_region_with_403(s3_world: tuple[World, object]) -> None:
    world, _ = s3_world
    ref = save_cohort(world.archive.db, "all", CohortDefinition("T1"), "dm").ref
    key = create_key(world.archive.db, "dm", grants=["data_manager@T1"], scopes=["*"])
    client = TestClient(create_app(world.archive), headers={"Authorization": f"Bearer {key}"})
    r = client.post("/api/exports", json={"cohort": ref, "destination": "s3://exports-us/x"})
    assert r.status_code == 403 and "region us" in r.json()["detail"]
    body = {"cohort": ref, "destination": "s3://exports-eu/x", "wait": True}
    ok = client.post("/api/exports", json=body)
    assert ok.status_code == 201 and ok.json()["destination"] == "s3://exports-eu/x/"
