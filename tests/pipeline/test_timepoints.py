"""Visits: a published series carries its time point, found by data, study or date rule."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from sqlalchemy import select

from dicomfactory import make_dataset, to_bytes
from trialpacs.archive import Archive
from trialpacs.config import apply, load_text
from trialpacs.index import lookup
from trialpacs.index.qido import Query, search
from trialpacs.pipeline import qc
from trialpacs.pipeline.process import process_series
from trialpacs.pipeline.scheduler import due_series, queue
from trialpacs.pipeline.status import pipeline_status
from trialpacs.trials.events import recent_events
from trialpacs.trials.intake import store_for_site
from trialpacs.trials.models import PipelineSeries
from trials.support import config_yaml, open_archive

WINDOWS = (
    ("{id: BL, description: Baseline,", "{id: BL, description: Baseline, window_days: [-14, 0],"),
    ("{id: W12, description: Week 12,", "{id: W12, description: Week 12, window_days: [70, 98],"),
)


def windowed_yaml(tmp: Path) -> str:
    text = config_yaml(tmp)
    for old, new in WINDOWS:
        assert old in text
        text = text.replace(old, new)
    return text


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    archive = open_archive(tmp_path, pipeline_executor="off", series_settle_seconds=0)
    apply(archive, load_text(windowed_yaml(tmp_path)))
    yield archive
    archive.close()


class Recorder:
    """A QC hook that remembers what it was shown."""

    def __init__(self) -> None:
        self.seen: list[qc.SeriesForQc] = []

    def check(self, series: qc.SeriesForQc) -> qc.QcVerdict:
        self.seen.append(series)
        return qc.QcVerdict("pass")


def _study(
    archive: Archive,
    *,
    date: str,
    timepoint: str | None = None,
    patient: str = "MRN12345",
    modality: str = "MR",
) -> str:
    ds = make_dataset(
        patient_name="SMITH^JOHN", patient_id=patient, study_date=date, modality=modality
    )
    if timepoint is not None:
        ds.ClinicalTrialTimePointID = timepoint
    (outcome,) = store_for_site(archive, [to_bytes(ds)], "ONCO1", "S01")
    assert not isinstance(outcome, Exception), outcome
    return str(ds.SeriesInstanceUID)


def _row(archive: Archive, series_uid: str) -> PipelineSeries:
    with archive.db.read() as session:
        return session.scalars(
            select(PipelineSeries).where(PipelineSeries.series_uid == series_uid)
        ).one()


def _published_header(archive: Archive, series_uid: str) -> pydicom.Dataset:
    row = _row(archive, series_uid)
    with archive.db.read() as session:
        (ref,) = lookup.instances(session, row.published_study_uid)
    return pydicom.dcmread(io.BytesIO(archive.store.get(ref.blob_key)), stop_before_pixels=True)


def _published_studies(archive: Archive, timepoint: str) -> list[dict[str, Any]]:
    query = Query.from_params("study", [("ClinicalTrialTimePointID", timepoint)])
    with archive.db.read() as session:
        return search(session, query).items


def _run(archive: Archive, series_uid: str, hook: qc.QcHook | None = None) -> None:
    queue(archive, due_series(archive, 0, [series_uid]))
    process_series(archive, series_uid, hook or qc.PassThroughQc())


def test_visit_named_in_the_data_is_published_and_searchable(archive: Archive) -> None:
    hook = Recorder()
    series = _study(archive, date="20240101", timepoint="W12")
    _run(archive, series, hook)
    row = _row(archive, series)
    assert (row.timepoint_id, row.timepoint_source) == ("W12", "data")
    header = _published_header(archive, series)
    assert header.ClinicalTrialTimePointID == "W12"
    assert header.ClinicalTrialTimePointDescription == "Week 12"
    # QC sees the visit and that visit's expectations only.
    (seen,) = hook.seen
    assert seen.timepoint == "W12" and seen.expected_anatomy == ("KNEE",)
    # QIDO on the published archive matches ClinicalTrialTimePointID.
    (found,) = _published_studies(archive, "W12")
    assert found["0020000D"]["Value"] == [row.published_study_uid]
    assert found["00120050"]["Value"] == ["W12"]
    assert _published_studies(archive, "BL") == []


def test_date_rule_counts_days_from_the_subject_baseline(archive: Archive) -> None:
    follow_up = _study(archive, date="20240325")  # day 84
    baseline = _study(archive, date="20240101")  # earliest: the baseline, day 0
    _run(archive, follow_up)
    _run(archive, baseline)
    assert (_row(archive, follow_up).timepoint_id, _row(archive, follow_up).timepoint_source) == (
        "W12",
        "rule",
    )
    assert _row(archive, baseline).timepoint_id == "BL"
    assert _published_header(archive, follow_up).ClinicalTrialTimePointID == "W12"
    assert len(_published_studies(archive, "BL")) == 1


def test_a_declared_baseline_wins_over_an_earlier_screening_study(archive: Archive) -> None:
    screening = _study(archive, date="20231201")
    _study(archive, date="20240101", timepoint="BL")
    follow_up = _study(archive, date="20240325")
    _run(archive, follow_up)
    assert _row(archive, follow_up).timepoint_id == "W12"
    _run(archive, screening)  # day -31: before any window
    assert _row(archive, screening).timepoint_id == ""


def test_other_series_of_a_study_share_its_visit(archive: Archive) -> None:
    first = make_dataset(patient_name="SMITH^JOHN", patient_id="MRN12345", study_date="20240325")
    second = make_dataset(
        study=str(first.StudyInstanceUID),
        patient_name="SMITH^JOHN",
        patient_id="MRN12345",
        study_date="20240325",
    )
    store_for_site(archive, [to_bytes(first), to_bytes(second)], "ONCO1", "S01")
    _study(archive, date="20240101")
    _run(archive, str(first.SeriesInstanceUID))
    _run(archive, str(second.SeriesInstanceUID))
    row = _row(archive, str(second.SeriesInstanceUID))
    assert (row.timepoint_id, row.timepoint_source) == ("W12", "study")


def test_unassigned_is_published_without_a_visit_and_reported(archive: Archive) -> None:
    _study(archive, date="20240101")
    late = _study(archive, date="20240801")  # day 213: in no window
    unknown = _study(archive, date="20240802", timepoint="V9")
    _run(archive, late)
    _run(archive, unknown)
    assert _row(archive, late).timepoint_id == ""
    assert _row(archive, late).state == "published"
    assert "ClinicalTrialTimePointID" not in _published_header(archive, late)
    events = [e for e in recent_events(archive.db) if e["kind"] == "timepoint_unassigned"]
    details = " | ".join(e["detail"] for e in events)
    assert "day 213 after baseline is in no time point's window" in details
    assert "'V9' is not a time point" in details
    (row,) = pipeline_status(archive)["trials"]
    assert row["unassigned_timepoint_series"] == 2
    assert row["timepoints"] == {"": 2}
