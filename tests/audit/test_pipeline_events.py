"""The pipeline's job adapter records de-identification/publication and failures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dicomfactory import make_dataset, to_bytes
from trialpacs.archive import Archive
from trialpacs.audit import verify
from trialpacs.audit.chain import Filter, query
from trialpacs.pipeline import jobs, qc, runner
from trialpacs.pipeline.runner import run_claimed
from trialpacs.pipeline.scheduler import schedule
from trialpacs.trials.intake import store_for_site
from trials.support import configured


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    archive = configured(tmp_path, pipeline_executor="off", series_settle_seconds=0)
    yield archive
    archive.close()


def _run(archive: Archive) -> str:
    ds = make_dataset(patient_name="SMITH^JOHN", patient_id="MRN12345")
    store_for_site(archive, [to_bytes(ds)], "ONCO1", "S01")
    assert schedule(archive) == 1
    job = jobs.claim(archive.db, "t", 30)
    assert job is not None
    run_claimed(archive, job, "t")
    return str(ds.SeriesInstanceUID)


def test_publication_is_audited(archive: Archive) -> None:
    series = _run(archive)
    (e,) = query(archive.db, Filter(action="pipeline.*"))
    assert (e["outcome"], e["new_value"], e["series"]) == ("success", "published", series)
    assert (e["trial"], e["site"], e["actor"]) == ("ONCO1", "S01", "system:pipeline")
    assert verify(archive.db).ok


def test_failure_is_audited(archive: Archive) -> None:
    class Fail:
        def check(self, series: qc.SeriesForQc) -> qc.QcVerdict:
            return qc.QcVerdict("fail", "not a knee")

    runner._HOOKS[""] = Fail()
    try:
        _run(archive)
    finally:
        runner._HOOKS.clear()
    (e,) = query(archive.db, Filter(action="pipeline.*"))
    assert e["outcome"] == "failure" and "not a knee" in e["reason"]
