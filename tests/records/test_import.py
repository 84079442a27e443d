"""``trialpacs import --trial --site``: HL7 and FHIR files enter the quarantine like images."""

from __future__ import annotations

import json
import random
from pathlib import Path

from labelled_records import fhir_bundle, hl7, person, text_pdf, video_clip
from sqlalchemy import select
from typer.testing import CliRunner

from trialpacs.cli.main import app
from trialpacs.index.models import Series, Study
from trialpacs.ingest.importer import collect, import_items
from trialpacs.pipeline import qc
from trialpacs.pipeline.process import process_series
from trialpacs.trials.intake import site_placement
from trials.support import configured

runner = CliRunner()


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


def test_import_command_takes_pdfs_and_videos_with_a_patient(tmp_path: Path) -> None:
    """PDF by --patient-id, a video by its sidecar; a PDF with neither is refused by name."""
    archive = configured(tmp_path / "data", pipeline_executor="off", series_settle_seconds=0)
    try:
        rng = random.Random(43)
        p, q = person(rng), person(rng)
        src = tmp_path / "in"
        src.mkdir()
        (src / "report.pdf").write_bytes(text_pdf(p, rng).data)
        (src / "clip.mov").write_bytes(video_clip(q, rng, frames=12).data)
        (src / "clip.mov.json").write_text(
            json.dumps({"patient_id": q.mrn, "patient_name": q.dicom_name, "modality": "ES"})
        )
        base = ["import", "--data-dir", str(archive.settings.data_dir),
                "--trial", "ONCO1", "--site", "S01"]  # fmt: skip
        res = runner.invoke(app, [*base, str(src), "--patient-id", p.mrn,
                                  "--patient-name", p.dicom_name])  # fmt: skip
        assert res.exit_code == 0, res.output
        with archive.db.read() as session:
            rows = session.execute(select(Series.series_uid, Series.modality)).all()
        assert sorted(m for _, m in rows) == ["DOC", "ES"]
        for uid, _ in rows:
            assert process_series(archive, uid, qc.PassThroughQc()).state == "published"
        with archive.db.read() as session:
            subjects = set(
                session.scalars(select(Study.patient_id).where(Study.collection == "published"))
            )
        assert subjects == {"S01-0001", "S01-0002"}  # the sidecar's patient is another subject

        lone = tmp_path / "lone"
        lone.mkdir()
        (lone / "letter.pdf").write_bytes(text_pdf(p, rng).data)
        res = runner.invoke(app, [*base, str(lone)])
        out = " ".join(res.output.split())
        assert res.exit_code == 1
        assert "letter.pdf: a pdf record does not name its patient" in out
        assert "letter.pdf.json" in out
        (lone / "letter.pdf.json").write_text(json.dumps({"patient_id": p.mrn, "x": 1}))
        res = runner.invoke(app, [*base, str(lone)])
        assert res.exit_code == 1 and "unknown field(s) x" in " ".join(res.output.split())
    finally:
        archive.close()
