"""Naming the visit at intake: STOW ``?timepoint=``, ``import --timepoint``."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from dicomfactory import make_dataset, to_bytes
from trialpacs.access.tokens import create_token
from trialpacs.archive import Archive
from trialpacs.errors import Conflict, InvalidInput
from trialpacs.index.models import Study
from trialpacs.pipeline import qc
from trialpacs.pipeline.process import process_series
from trialpacs.pipeline.scheduler import due_series, queue
from trialpacs.trials import routing
from trialpacs.trials.intake import store_for_site
from trialpacs.trials.models import PipelineSeries
from trialpacs.web.app import create_app
from trials.support import configured
from trials.test_routing import CTYPE, multipart

URL = "/dicomweb/trials/ONCO1/sites/S01/studies"


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    archive = configured(tmp_path, pipeline_executor="off")
    routing.forget_cache()
    yield archive
    archive.close()


def _visit(archive: Archive, study_uid: str) -> str | None:
    """The identified study's visit; None when the study was not stored."""
    with archive.db.read() as session:
        return session.scalar(
            select(Study.timepoint_id).where(
                Study.study_uid == study_uid, Study.collection == "quarantine"
            )
        )


def test_stow_names_the_visit_and_it_is_published_with_it(archive: Archive) -> None:
    token = create_token(archive.db, "uploader")
    client = TestClient(create_app(archive))
    auth = {"Authorization": f"Bearer {token}", "Content-Type": CTYPE}
    # The data says BL; the request's explicit visit wins.
    ds = make_dataset(patient_name="SMITH^JOHN")
    ds.ClinicalTrialTimePointID = "BL"
    res = client.post(f"{URL}?timepoint=W12", content=multipart([to_bytes(ds)]), headers=auth)
    assert res.status_code == 200, res.text
    study = str(ds.StudyInstanceUID)
    assert _visit(archive, study) == "W12"
    series = str(ds.SeriesInstanceUID)
    queue(archive, due_series(archive, 0, [series]))
    process_series(archive, series, qc.PassThroughQc())
    with archive.db.read() as session:
        row = session.scalars(select(PipelineSeries)).one()
        published = session.scalars(select(Study).where(Study.collection == "published")).one()
    assert (row.timepoint_id, row.timepoint_source) == ("W12", "request")
    assert published.timepoint_id == "W12"
    # Published QIDO filters by the visit.
    q = client.get("/dicomweb/studies?ClinicalTrialTimePointID=W12", headers=auth)
    assert [s["0020000D"]["Value"][0] for s in q.json()] == [published.study_uid]
    assert client.get("/dicomweb/studies?ClinicalTrialTimePointID=BL", headers=auth).json() == []

    # A visit the trial does not declare: 400 naming the known ones, nothing stored.
    other = make_dataset()
    bad = client.post(f"{URL}?timepoint=V9", content=multipart([to_bytes(other)]), headers=auth)
    assert bad.status_code == 400
    assert "no time point 'V9'" in bad.text and "BL, W12" in bad.text
    assert _visit(archive, str(other.StudyInstanceUID)) is None


def test_a_study_is_one_visit(archive: Archive) -> None:
    first = make_dataset()
    study = str(first.StudyInstanceUID)
    (ok,) = store_for_site(archive, [to_bytes(first)], "ONCO1", "S01", timepoint="BL")
    assert not isinstance(ok, Exception)
    more = make_dataset(study=study)
    (refused,) = store_for_site(archive, [to_bytes(more)], "ONCO1", "S01", timepoint="W12")
    assert isinstance(refused, Conflict) and "assigned to time point 'BL'" in str(refused)
    # Same visit again, or no visit named: accepted.
    (same,) = store_for_site(archive, [to_bytes(more)], "ONCO1", "S01", timepoint="BL")
    assert not isinstance(same, Exception)
    (plain,) = store_for_site(archive, [to_bytes(make_dataset(study=study))], "ONCO1", "S01")
    assert not isinstance(plain, Exception) and _visit(archive, study) == "BL"
    # A study stored without a visit gets one named later.
    late = make_dataset()
    store_for_site(archive, [to_bytes(late)], "ONCO1", "S01")
    assert _visit(archive, str(late.StudyInstanceUID)) == ""
    more_late = make_dataset(study=str(late.StudyInstanceUID))
    store_for_site(archive, [to_bytes(more_late)], "ONCO1", "S01", timepoint="W12")
    assert _visit(archive, str(late.StudyInstanceUID)) == "W12"
    with pytest.raises(InvalidInput, match="no time point 'w12'"):
        store_for_site(archive, [to_bytes(make_dataset())], "ONCO1", "S01", timepoint="w12")


def test_import_names_the_visit(tmp_path: Path, archive: Archive) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    ds = make_dataset()
    (folder / "a.dcm").write_bytes(to_bytes(ds))
    cmd = [sys.executable, "-m", "trialpacs.cli.main", "import", str(folder)]
    args = ["--data-dir", str(archive.settings.data_dir), "--trial", "ONCO1", "--site", "S01"]
    res = subprocess.run([*cmd, *args, "--timepoint", "W12"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert _visit(archive, str(ds.StudyInstanceUID)) == "W12"
    res = subprocess.run([*cmd, *args, "--timepoint", "V9"], capture_output=True, text=True)
    assert res.returncode == 2 and "no time point 'V9'" in res.stderr
    lone = subprocess.run(
        [*cmd, "--data-dir", str(archive.settings.data_dir), "--timepoint", "W12"],
        capture_output=True,
        text=True,
    )
    assert lone.returncode == 2 and "--timepoint needs --trial" in lone.stderr
