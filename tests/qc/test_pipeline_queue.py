"""End to end: the pipeline holds a wrong anatomy, a data manager approves or rejects it, signed.

Series are seeded variants of the real shoulder, knee and brain MR images of
the test corpus, sent identified into a trial that expects a shoulder, with a
profile that cleans descriptions (so the metadata layer must have read them
before de-identification).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from qc.support import part10, series
from trialpacs.access import users
from trialpacs.archive import Archive
from trialpacs.audit.chain import Filter, query
from trialpacs.config import apply, load_text
from trialpacs.index.models import Series, Study
from trialpacs.pipeline import jobs
from trialpacs.pipeline.runner import run_claimed
from trialpacs.pipeline.scheduler import schedule
from trialpacs.qc.models import QcSeries
from trialpacs.qc.synthetic import Source
from trialpacs.settings import load_settings
from trialpacs.trials.intake import store_for_site
from trialpacs.trials.models import PipelineSeries
from trialpacs.web.app import create_app

pytestmark = pytest.mark.slow
PASSWORD = "correct-horse-battery-7"
CONFIG = """\
version: 1
regions:
  - id: eu
storage_backends:
  - {{name: q-eu, kind: local, path: {tmp}/q-eu, region: eu, purpose: identified}}
profiles:
  - name: qcprof
    extends: trial
    options: [clean-descriptors]
sites:
  - {{id: S1, name: One, region: eu, identified_backend: q-eu}}
trials:
  - id: SHO1
    profile: qcprof
    deid_regions: [local, eu]
    timepoints:
      - {{id: BL, modalities: [MR], anatomy: [SHOULDER]}}
    sites: [{{site: S1}}]
    qc: {{hold: 0.5, min_reference: 10}}
  - id: SCOUTOK
    profile: qcprof
    deid_regions: [local, eu]
    timepoints:
      - {{id: BL, modalities: [MR], anatomy: [SHOULDER]}}
    sites: [{{site: S1}}]
    qc: {{accept_localizers: true}}
  - id: SERIESONLY
    profile: qcprof
    deid_regions: [local, eu]
    timepoints:
      - {{id: BL, modalities: [MR], expected_series: [t1, t2]}}
    sites: [{{site: S1}}]
  - id: OTHER
    profile: qcprof
    deid_regions: [local, eu]
    sites: [{{site: S1}}]
"""


@dataclass
class World:
    archive: Archive
    client: TestClient
    states: dict[str, str]  # label -> pipeline state
    keys: dict[str, str]  # label -> pipeline key


def _send(archive: Archive, datasets: list[Any], trial: str = "SHO1") -> str:
    outcomes = store_for_site(archive, [part10(d) for d in datasets], trial, "S1")
    assert all(not isinstance(o, Exception) for o in outcomes), outcomes
    assert schedule(archive) == 1
    job = jobs.claim(archive.db, "test", 60)
    assert job is not None
    assert run_claimed(archive, job, "test") == jobs.DONE
    return str(datasets[0].SeriesInstanceUID)


def _state(archive: Archive, key: str) -> str:
    with archive.db.read() as session:
        return session.scalars(
            select(PipelineSeries.state).where(PipelineSeries.series_uid == key)
        ).one()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, sources: dict[str, Source]) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("qc")
    archive = Archive.open(
        load_settings(
            None,
            data_dir=tmp,
            cookie_secure=False,
            pipeline_executor="off",
            series_settle_seconds=0,
            qc_thresholds={"hold": 0.5, "z_hold": 6.0},  # installation default
        )
    )
    apply(archive, load_text(CONFIG.format(tmp=tmp)))
    users.add_user(archive.db, "dm", password=PASSWORD, display_name="Dana Manager")
    users.grant(archive.db, "dm", "data_manager@SHO1")
    users.add_user(archive.db, "dm2", password=PASSWORD, display_name="Other Manager")
    users.grant(archive.db, "dm2", "data_manager@OTHER")
    keys, states = {}, {}
    shoulder = {"StudyDescription": "MRT Schulter rechts", "ProtocolName": "T1 SAG"}
    for seed in range(10):
        keys[f"shoulder{seed}"] = _send(archive, series(sources["shoulder"], seed, **shoulder))
    # Labelled in French, cleaned by the profile: only the identified read sees "GENOU".
    keys["knee"] = _send(archive, series(sources["knee"], 100, StudyDescription="IRM GENOU DROIT"))
    # A brain labelled SHOULDER: the image layer must catch it.
    keys["brain"] = _send(archive, series(sources["brain"], 101, **shoulder))
    keys["late_shoulder"] = _send(archive, series(sources["shoulder"], 50, **shoulder))
    # A scout of the right anatomy, filed as the diagnostic series.
    scout = {**shoulder, "ProtocolName": "3-plane localizer"}
    keys["localizer"] = _send(archive, series(sources["shoulder"], 60, "localizer", **scout))
    keys["accepted_localizer"] = _send(
        archive, series(sources["shoulder"], 61, "localizer", **scout), trial="SCOUTOK"
    )
    # A time point that declares its series but no anatomy: the localizer rule alone.
    keys["declared_localizer"] = _send(
        archive, series(sources["shoulder"], 62, "localizer", **scout), trial="SERIESONLY"
    )
    keys["declared_t1"] = _send(archive, series(sources["knee"], 63, **shoulder), "SERIESONLY")
    for label, key in keys.items():
        states[label] = _state(archive, key)
    with TestClient(create_app(archive)) as client:
        yield World(archive, client, states, keys)
    archive.close()


def _token(w: World, user: str) -> dict[str, str]:
    r = w.client.post("/auth/login", json={"username": user, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _row(w: World, label: str) -> QcSeries:
    with w.archive.db.read() as session:
        return session.scalars(select(QcSeries).where(QcSeries.series_uid == w.keys[label])).one()


def _published_series(w: World) -> set[str]:
    with w.archive.db.read() as session:
        return set(
            session.scalars(
                select(Series.series_uid)
                .join(Study, Study.pk == Series.study_pk)
                .where(Study.collection == "published")
            )
        )


def test_consistent_series_are_published_and_wrong_ones_held(world: World) -> None:
    assert all(world.states[f"shoulder{i}"] == "published" for i in range(10))
    assert world.states["late_shoulder"] == "published"
    assert world.states["knee"] == "held_qc"
    assert world.states["brain"] == "held_qc"
    knee = _row(world, "knee")
    assert knee.metadata_status == "conflicting"
    reasons = knee.reasons
    assert "Knee (SCT 72696002)" in reasons and "GENOU" not in reasons
    brain = _row(world, "brain")
    assert brain.metadata_status == "consistent"  # the labels lie
    assert brain.image_score is not None and brain.image_score > 0.5
    assert "image is an outlier" in brain.reasons
    # Only verdicts are kept: the QC row holds no header text of the identified data.
    assert all(w not in (knee.reasons + brain.reasons) for w in ("MRT", "IRM", "Schulter"))


def test_queue_lists_held_series_for_the_trials_data_manager(world: World) -> None:
    r = world.client.get("/api/qc/queue?trial=SHO1", headers=_token(world, "dm"))
    assert r.status_code == 200
    items = {i["series_uid"]: i for i in r.json()}
    knee = items[_row(world, "knee").deid_series_uid]
    assert knee["trial"] == "SHO1" and knee["site"] == "S1" and knee["modality"] == "MR"
    assert knee["state"] == "held_qc" and "timepoint" in knee
    assert knee["subject"].startswith("S1-") and knee["reasons"]
    assert set(knee) >= {"study_uid", "received", "reasons", "thumbnail_url"}
    png = world.client.get(knee["thumbnail_url"], headers=_token(world, "dm"))
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    other = world.client.get("/api/qc/queue", headers=_token(world, "dm2"))
    assert other.status_code == 200 and other.json() == []


def test_localizer_filed_as_diagnostic_series_is_held_unless_the_trial_accepts_it(
    world: World,
) -> None:
    assert world.states["localizer"] == "held_qc"
    row = _row(world, "localizer")
    assert row.verdict == "hold" and row.stratum.endswith("/localizer")
    assert "localizer filed as diagnostic series" in row.reasons
    with world.archive.db.read() as session:
        reason = session.scalars(
            select(PipelineSeries.reason).where(
                PipelineSeries.series_uid == world.keys["localizer"]
            )
        ).one()
    assert reason.startswith("localizer filed as diagnostic series")
    assert world.states["accepted_localizer"] == "published"
    assert "localizer filed" not in _row(world, "accepted_localizer").reasons
    # Declared series, no anatomy: the localizer is held and queued, other series pass unchecked.
    assert world.states["declared_localizer"] == "held_qc"
    declared = _row(world, "declared_localizer")
    assert declared.verdict == "hold" and "localizer filed as diagnostic series" in declared.reasons
    assert world.states["declared_t1"] == "published"


def test_queue_received_is_when_the_series_arrived(world: World) -> None:
    arrived = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with world.archive.db.write() as session:
        session.execute(
            update(Series)
            .where(Series.series_uid == world.keys["localizer"])
            .values(created_at=arrived)
        )
    r = world.client.get("/api/qc/queue?trial=SHO1", headers=_token(world, "dm"))
    items = {i["series_uid"]: i for i in r.json()}
    item = items[_row(world, "localizer").deid_series_uid]
    received = datetime.fromisoformat(item["received"])
    assert received.replace(tzinfo=None) == arrived.replace(tzinfo=None)
    # Oldest arrival first, whenever QC looked at it.
    assert next(iter(items)) == item["series_uid"]


def test_other_trials_data_manager_gets_404(world: World) -> None:
    uid = _row(world, "knee").deid_series_uid
    body = {"decision": "approve", "password": PASSWORD}
    r = world.client.post(f"/api/qc/series/{uid}/decision", json=body, headers=_token(world, "dm2"))
    missing = world.client.post(
        "/api/qc/series/1.2.3.4.5.6/decision", json=body, headers=_token(world, "dm2")
    )
    assert r.status_code == missing.status_code == 404
    assert r.content == missing.content


def test_wrong_password_is_refused_and_nothing_changes(world: World) -> None:
    uid = _row(world, "knee").deid_series_uid
    body = {"decision": "approve", "password": "not-my-password-9"}
    r = world.client.post(f"/api/qc/series/{uid}/decision", json=body, headers=_token(world, "dm"))
    assert r.status_code == 403 and "signature refused" in r.json()["detail"]
    assert _state(world.archive, world.keys["knee"]) == "held_qc"
    assert _row(world, "knee").decision == ""


def test_approve_publishes_with_a_signature(world: World) -> None:
    uid = _row(world, "knee").deid_series_uid
    assert uid not in _published_series(world)
    body = {"decision": "approve", "meaning": "Approved", "password": PASSWORD,
            "reason": "knee imaged by protocol amendment 3"}  # fmt: skip
    r = world.client.post(f"/api/qc/series/{uid}/decision", json=body, headers=_token(world, "dm"))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["state"] == "published"
    assert out["signature"]["printed_name"] == "Dana Manager"
    assert out["signature"]["meaning"] == "Approved" and out["signature"]["signed_at"]
    assert uid in _published_series(world)
    entry = query(world.archive.db, Filter(action="qc.approve"))[-1]
    assert (entry["actor"], entry["series"], entry["new_value"]) == ("dm", uid, "published")
    assert query(world.archive.db, Filter(action="signature.sign"))[-1]["outcome"] == "success"
    again = world.client.post(
        f"/api/qc/series/{uid}/decision", json=body, headers=_token(world, "dm")
    )
    assert again.status_code == 409


def test_reject_never_publishes(world: World) -> None:
    uid = _row(world, "brain").deid_series_uid
    headers = _token(world, "dm")
    no_reason = {"decision": "reject", "password": PASSWORD}
    assert (
        world.client.post(
            f"/api/qc/series/{uid}/decision", json=no_reason, headers=headers
        ).status_code
        == 400
    )
    body = {**no_reason, "reason": "brain, not a shoulder"}
    r = world.client.post(f"/api/qc/series/{uid}/decision", json=body, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "rejected_qc"
    assert r.json()["signature"]["meaning"] == "Rejected"
    assert uid not in _published_series(world)
    assert query(world.archive.db, Filter(action="qc.reject"))[-1]["reason"] == body["reason"]
    # Sent through the pipeline again, it stays rejected.
    from trialpacs.pipeline.scheduler import retry_series

    assert retry_series(world.archive, world.keys["brain"])
    job = jobs.claim(world.archive.db, "test", 60)
    assert job is not None
    run_claimed(world.archive, job, "test")
    assert _state(world.archive, world.keys["brain"]) == "rejected_qc"
    assert uid not in _published_series(world)
    assert query(world.archive.db, Filter(action="qc.rejected"))[-1]["new_value"] == "rejected_qc"
    listed = world.client.get("/api/qc/queue", headers=headers).json()
    assert uid not in {i["series_uid"] for i in listed}
