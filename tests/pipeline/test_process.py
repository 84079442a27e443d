"""The series job in-process: de-identify, verify, QC, publish; idempotent and safe."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from dicomfactory import make_dataset, to_bytes
from trialpacs.archive import Archive
from trialpacs.index.models import Instance, Study
from trialpacs.index.qido import Query, search
from trialpacs.pipeline import jobs, qc
from trialpacs.pipeline.process import PermanentFailure, process_series
from trialpacs.pipeline.runner import run_claimed
from trialpacs.pipeline.scheduler import schedule
from trialpacs.pipeline.status import pipeline_status
from trialpacs.trials.intake import store_for_site
from trialpacs.trials.models import PipelineSeries
from trials.support import configured


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    archive = configured(tmp_path, pipeline_executor="off", series_settle_seconds=0)
    yield archive
    archive.close()


def _series(n: int = 3, **kw: object) -> tuple[str, list[bytes]]:
    first = make_dataset(patient_name="SMITH^JOHN", patient_id="MRN12345", **kw)  # type: ignore[arg-type]
    study, series = str(first.StudyInstanceUID), str(first.SeriesInstanceUID)
    datas = [to_bytes(first)] + [
        to_bytes(
            make_dataset(
                study=study,
                series=series,
                instance_number=i + 2,
                patient_name="SMITH^JOHN",
                patient_id="MRN12345",
                **kw,  # type: ignore[arg-type]
            )
        )
        for i in range(n - 1)
    ]
    return series, datas


def _published(archive: Archive) -> list[dict[str, object]]:
    with archive.db.read() as session:
        return search(session, Query(level="instance")).items


def test_series_is_published_deidentified_and_rerun_is_idempotent(archive: Archive) -> None:
    series, datas = _series()
    store_for_site(archive, datas, "ONCO1", "S01")
    out = process_series(archive, series, qc.PassThroughQc())
    assert (out.state, out.published) == ("published", 3)
    items = _published(archive)
    assert len(items) == 3
    names = {str(i) for i in items}
    assert "SMITH" not in names and "MRN12345" not in names
    with archive.db.read() as session:
        study = session.scalars(select(Study).where(Study.collection == "published")).one()
        assert study.patient_id == "S01-0001"
        assert (study.trial_id, study.site_id) == ("ONCO1", "S01")
        sops = sorted(
            session.scalars(select(Instance.sop_uid).where(Instance.study_pk == study.pk))
        )
    # Again: same UIDs, nothing duplicated.
    process_series(archive, series, qc.PassThroughQc())
    with archive.db.read() as session:
        again = sorted(
            session.scalars(select(Instance.sop_uid).where(Instance.study_pk == study.pk))
        )
    assert again == sops and len(_published(archive)) == 3


def test_same_patient_same_pseudonym_other_patient_next_number(archive: Archive) -> None:
    s1, d1 = _series(1)
    s2, d2 = _series(1)
    other = make_dataset(patient_name="ROE^RICHARD", patient_id="MRN99")
    store_for_site(archive, [*d1, *d2, to_bytes(other)], "ONCO1", "S01")
    for uid in (s1, s2, str(other.SeriesInstanceUID)):
        process_series(archive, uid, qc.PassThroughQc())
    with archive.db.read() as session:
        ids = sorted(
            session.scalars(select(Study.patient_id).where(Study.collection == "published"))
        )
    assert ids == ["S01-0001", "S01-0001", "S01-0002"]


class Hold:
    def check(self, series: qc.SeriesForQc) -> qc.QcVerdict:
        assert series.expected_anatomy == ("KNEE", "KNEE")
        return qc.QcVerdict("hold", "wrong anatomy")


def test_qc_hold_and_failed_verification_publish_nothing(archive: Archive) -> None:
    series, datas = _series(2)
    store_for_site(archive, datas, "ONCO1", "S01")
    out = process_series(archive, series, Hold())
    assert out.state == "held_qc" and _published(archive) == []


def _burned_series(archive: Archive) -> str:
    import io

    import pydicom

    burned, bdatas = _series(1)
    ds = pydicom.dcmread(io.BytesIO(bdatas[0]))
    ds.BurnedInAnnotation = "YES"
    store_for_site(archive, [to_bytes(ds)], "ONCO1", "S01")
    return burned


def test_burned_in_annotation_is_scanned_before_publication(archive: Archive) -> None:
    """The trial profile's Clean Pixel Data runs the OCR cleaner on at-risk images."""
    burned = _burned_series(archive)
    out = process_series(archive, burned, qc.PassThroughQc())
    assert out.state == "published"
    import io

    import pydicom

    from trialpacs.index import lookup

    with archive.db.read() as session:
        (ref,) = lookup.instances(session)
    published = pydicom.dcmread(io.BytesIO(archive.store.get(ref.blob_key)))
    assert published.BurnedInAnnotation == "NO"
    codes = {item.CodeValue for item in published.DeidentificationMethodCodeSequence}
    assert "113101" in codes


def test_ocr_failure_keeps_the_instance_back(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trialpacs.deid.pixel_hook import PixelCleanError
    from trialpacs.pipeline import deidentify as deid_adapter

    class BrokenOcr:
        def clean(self, ds: object, phi_terms: object) -> object:
            raise PixelCleanError("OCR engine crashed")

    monkeypatch.setattr(deid_adapter, "pixel_cleaner_for", lambda profile, **_options: BrokenOcr())
    monkeypatch.setattr(deid_adapter, "_CACHE", {})
    burned = _burned_series(archive)
    with pytest.raises(PermanentFailure, match="OCR engine crashed"):
        process_series(archive, burned, qc.PassThroughQc())
    assert _published(archive) == []


def test_scheduler_and_runner_end_in_status(archive: Archive) -> None:
    series, datas = _series(2)
    store_for_site(archive, datas, "ONCO1", "S01")
    assert schedule(archive) == 1
    assert schedule(archive) == 0  # queued once
    job = jobs.claim(archive.db, "t", 30)
    assert job is not None
    assert run_claimed(archive, job, "t") == jobs.DONE
    status = pipeline_status(archive)
    (row,) = status["trials"]
    assert row["trial"] == "ONCO1" and row["received_instances"] == 2
    assert row["published_series"] == 1 and row["published_instances"] == 2
    # More instances arrive later: the series goes through again.
    extra = make_dataset(
        study=str(pydicom_uid(datas[0], "StudyInstanceUID")),
        series=series,
        instance_number=9,
        patient_name="SMITH^JOHN",
        patient_id="MRN12345",
    )
    store_for_site(archive, [to_bytes(extra)], "ONCO1", "S01")
    assert schedule(archive) == 1
    job = jobs.claim(archive.db, "t", 30)
    assert job is not None and run_claimed(archive, job, "t") == jobs.DONE
    assert len(_published(archive)) == 3


def test_failure_needs_attention_with_reason(archive: Archive) -> None:
    _, datas = _series(1)
    store_for_site(archive, datas, "ONCO1", "S01")
    schedule(archive)
    job = jobs.claim(archive.db, "t", 30)
    assert job is not None

    class Fail:
        def check(self, series: qc.SeriesForQc) -> qc.QcVerdict:
            return qc.QcVerdict("fail", "not a knee")

    from trialpacs.pipeline import runner

    runner._HOOKS[""] = Fail()
    try:
        assert run_claimed(archive, job, "t") == jobs.ATTENTION
    finally:
        runner._HOOKS.clear()
    with archive.db.read() as session:
        row = session.scalars(select(PipelineSeries)).one()
    assert row.state == "needs_attention" and "not a knee" in row.reason
    assert pipeline_status(archive)["trials"][0]["needs_attention_series"] == 1


def pydicom_uid(data: bytes, keyword: str) -> str:
    import io

    import pydicom

    return str(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).get(keyword))
