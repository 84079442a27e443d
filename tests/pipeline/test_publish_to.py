"""A trial declares where its de-identified data may go; anything else is refused and audited."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from sqlalchemy import select, update

from dicomfactory import make_dataset, to_bytes
from trialpacs.archive import Archive
from trialpacs.audit.models import AuditEntry
from trialpacs.config import ConfigError, apply, load_text
from trialpacs.index.models import Instance, Study
from trialpacs.pipeline import jobs
from trialpacs.pipeline.runner import run_claimed
from trialpacs.pipeline.scheduler import schedule
from trialpacs.trials.events import recent_events
from trialpacs.trials.intake import store_for_site
from trialpacs.trials.models import PipelineSeries, StorageBackend
from trials.support import config_yaml, open_archive

SPONSOR = """\
  - name: sponsor-eu
    kind: local
    path: {path}
    region: eu-west
    purpose: deidentified
"""


def publishing_yaml(tmp: Path, publish_to: str = "[sponsor-eu]") -> str:
    text = config_yaml(tmp)
    text = text.replace("profiles:\n", SPONSOR.format(path=tmp / "sponsor-eu") + "profiles:\n")
    return text.replace(
        "    deid_regions: [local, eu-west]\n",
        f"    deid_regions: [local, eu-west]\n    publish_to: {publish_to}\n",
    )


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    archive = open_archive(tmp_path, pipeline_executor="off", series_settle_seconds=0)
    apply(archive, load_text(publishing_yaml(tmp_path)))
    yield archive
    archive.close()


def _run_one(archive: Archive) -> str:
    ds = make_dataset(patient_name="SMITH^JOHN", patient_id="MRN12345")
    store_for_site(archive, [to_bytes(ds)], "ONCO1", "S01")
    assert schedule(archive) == 1
    job = jobs.claim(archive.db, "t", 30)
    assert job is not None
    return run_claimed(archive, job, "t")


def test_published_data_is_copied_to_the_declared_backend(archive: Archive) -> None:
    assert _run_one(archive) == jobs.DONE
    copies = list((archive.settings.data_dir / "sponsor-eu").rglob("*.dcm"))
    assert len(copies) == 1
    copy = pydicom.dcmread(copies[0])
    assert copy.PatientID == "S01-0001" and "SMITH" not in str(copy.PatientName)
    with archive.db.read() as session:
        sop = session.scalar(
            select(Instance.sop_uid)
            .join(Study, Study.pk == Instance.study_pk)
            .where(Study.collection == "published")
        )
        audit = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "pipeline.deidentify_publish")
        ).one()
    assert copy.SOPInstanceUID == sop
    assert "sponsor-eu" in audit.detail


def test_a_backend_outside_the_trial_regions_is_refused_and_audited(archive: Archive) -> None:
    # The backend was moved to another region behind the configuration's back.
    with archive.db.write() as session:
        session.execute(
            update(StorageBackend)
            .where(StorageBackend.name == "sponsor-eu")
            .values(region_id="us-east")
        )
    assert _run_one(archive) == jobs.ATTENTION
    assert not (archive.settings.data_dir / "sponsor-eu").exists()
    with archive.db.read() as session:
        row = session.scalars(select(PipelineSeries)).one()
        published = session.scalar(select(Study.pk).where(Study.collection == "published").limit(1))
        refused = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "residency.refused")
        ).one()
    assert row.state == "needs_attention" and "region 'us-east'" in row.reason
    assert published is None
    assert refused.outcome == "failure" and refused.trial == "ONCO1"
    assert any(e["kind"] == "residency_refused" for e in recent_events(archive.db))


def test_config_refuses_a_target_outside_deid_regions(tmp_path: Path) -> None:
    text = publishing_yaml(tmp_path).replace(
        "    region: eu-west\n    purpose: deidentified",
        "    region: us-east\n    purpose: deidentified",
    )
    with pytest.raises(ConfigError) as info:
        load_text(text, "trials.yaml")
    (problem,) = [str(p) for p in info.value.problems]
    line = text.splitlines().index("    publish_to: [sponsor-eu]") + 1
    assert problem.startswith(
        f"trials.yaml:{line}: trial 'ONCO1' may not publish to 'sponsor-eu' in region 'us-east'"
    ), problem
    assert "add 'us-east' to deid_regions" in problem
    unknown = publishing_yaml(tmp_path, "[q-eu, sponsr-eu]")
    with pytest.raises(ConfigError) as info:
        load_text(unknown, "trials.yaml")
    messages = [str(p) for p in info.value.problems]
    assert any("backend 'q-eu' is for identified data" in m for m in messages)
    assert any(
        "unknown backend 'sponsr-eu'" in m and "did you mean 'sponsor-eu'" in m for m in messages
    )
