"""From a site's identified upload, through the pipeline, to a research package."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest

from dicomfactory import make_dataset, to_bytes
from exports.support import who
from trialpacs.archive import Archive
from trialpacs.exports.cohort import CohortDefinition
from trialpacs.exports.job import run_export
from trialpacs.exports.saved import save_cohort
from trialpacs.pipeline import qc
from trialpacs.pipeline.process import process_series
from trialpacs.pipeline.scheduler import schedule
from trialpacs.trials.intake import store_for_site
from trials.support import configured


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    archive = configured(tmp_path / "data", pipeline_executor="off", series_settle_seconds=0)
    yield archive
    archive.close()


@pytest.mark.slow
def test_pipeline_published_series_export_without_identity(
    archive: Archive, tmp_path: Path
) -> None:
    first = make_dataset(patient_name="SMITH^JOHN", patient_id="MRN12345", rows=8, cols=8)
    first.BodyPartExamined = "KNEE"
    study, series = str(first.StudyInstanceUID), str(first.SeriesInstanceUID)
    datas = [to_bytes(first)]
    for i in range(2, 4):
        ds = make_dataset(study=study, series=series, instance_number=i, rows=8, cols=8,
                          patient_name="SMITH^JOHN", patient_id="MRN12345")  # fmt: skip
        ds.BodyPartExamined = "KNEE"
        datas.append(to_bytes(ds))
    store_for_site(archive, datas, "ONCO1", "S01", timepoint="BL")
    assert schedule(archive) == 1  # the pipeline's row for the series
    assert process_series(archive, series, qc.PassThroughQc()).state == "published"
    definition = CohortDefinition("ONCO1", timepoints=("BL",), qc_status=("passed",))
    ref = save_cohort(archive.db, "baseline", definition, "dm").ref
    out = tmp_path / "pkg"
    result = run_export(archive, who("data_manager@ONCO1", name="dm"), ref, str(out))
    assert (result.series, result.instances) == (1, 3)
    (row,) = csv.DictReader((out / "manifest.csv").open())
    assert (row["subject"], row["timepoint"], row["qc_status"]) == ("S01-0001", "BL", "passed")
    assert row["series_uid"] != series  # the published (de-identified) series
    for path in out.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert b"SMITH" not in data and b"MRN12345" not in data, path
            assert series.encode() not in data and study.encode() not in data, path
    readme = (out / "README.md").read_text()
    assert "profile: `onco`" in readme and "clean-descriptors" in readme
