"""The demo: sample images go through the real pipeline into a demo trial."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
from sqlalchemy import select

from trialpacs.archive import Archive
from trialpacs.demo import DEMO_TRIAL, demo_paths, load_demo
from trialpacs.index import lookup
from trialpacs.index.models import Study
from trialpacs.pipeline import qc
from trialpacs.pipeline.process import process_series
from trialpacs.settings import Settings


def test_demo_images_are_published_deidentified_in_the_demo_trial(tmp_path: Path) -> None:
    archive = Archive.open(Settings(data_dir=tmp_path))
    assert len(demo_paths()) >= 6
    token = load_demo(archive)
    assert token.startswith("tp_")
    originals = [pydicom.dcmread(p, stop_before_pixels=True) for p in demo_paths()]
    with archive.db.read() as session:
        held = session.execute(select(Study.collection, Study.trial_id)).all()
    assert {row for row in held} == {("quarantine", DEMO_TRIAL)}
    for series in {ds.SeriesInstanceUID for ds in originals}:
        assert process_series(archive, series, qc.PassThroughQc()).state == "published"
    with archive.db.read() as session:
        refs = lookup.instances(session)
    assert len(refs) == len(originals)
    names = {str(ds.PatientName) for ds in originals}
    for ref in refs:
        ds = pydicom.dcmread(io.BytesIO(archive.store.get(ref.blob_key)))
        assert ds.PatientIdentityRemoved == "YES"
        assert str(ds.PatientName) not in names
        assert ds.ClinicalTrialProtocolID or ds.ClinicalTrialSponsorName
    load_demo(archive)  # idempotent: a second start stores nothing new
    archive.close()
