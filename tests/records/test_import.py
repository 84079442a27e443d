"""``trialpacs import --trial --site``: HL7 and FHIR files enter the quarantine like images."""

from __future__ import annotations

import random
from pathlib import Path

from labelled_records import fhir_bundle, hl7, person
from sqlalchemy import select

from trialpacs.index.models import Series, Study
from trialpacs.ingest.importer import collect, import_items
from trialpacs.pipeline import qc
from trialpacs.pipeline.process import process_series
from trialpacs.trials.intake import site_placement
from trials.support import configured


def test_import_wraps_messages_and_refuses_other_files_by_name(tmp_path: Path) -> None:
    archive = configured(tmp_path / "data", pipeline_executor="off", series_settle_seconds=0)
    try:
        rng = random.Random(41)
        p = person(rng)
        src = tmp_path / "in"
        src.mkdir()
        (src / "oru.hl7").write_bytes(hl7(p, rng).data)
        (src / "bundle.json").write_bytes(fhir_bundle(p, rng).data)
        (src / "notes.txt").write_bytes(b"no patient here")
        where = site_placement(archive, "ONCO1", "S01")
        report = import_items(archive, collect([src], archive), placement=where)
        assert report.stored == 2
        assert [label.rsplit("/", 1)[-1] for label, _ in report.failed] == ["notes.txt"]
        with archive.db.read() as session:
            series = session.scalars(select(Series.series_uid)).all()
        for uid in series:
            assert process_series(archive, uid, qc.PassThroughQc()).state == "published"
        with archive.db.read() as session:
            subjects = set(
                session.scalars(select(Study.patient_id).where(Study.collection == "published"))
            )
        assert subjects == {"S01-0001"}  # one patient, one pseudonym across both messages
    finally:
        archive.close()
