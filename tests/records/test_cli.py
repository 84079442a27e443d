"""``trialpacs deid`` takes record files too and writes their original format next to the DICOM."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from labelled_records import hl7, person, text_pdf
from typer.testing import CliRunner

from trialpacs.cli.main import app
from trialpacs.records import pdf

runner = CliRunner()


def test_deid_command_dispatches_records_by_type(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIALPACS_DATA_DIR", str(tmp_path / "data"))
    rng = random.Random(31)
    p = person(rng)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "oru.hl7").write_bytes(hl7(p, rng).data)
    (tmp_path / "in" / "report.pdf").write_bytes(text_pdf(p, rng).data)
    out = tmp_path / "out"
    args = ["deid", str(tmp_path / "in"), "-o", str(out), "--trial", "T1", "--site", "S9",
            "--no-ner", "--patient-id", p.mrn]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    dicoms = sorted(out.rglob("*.dcm"))
    assert len(dicoms) == 2
    originals = {f.suffix: f for f in (out / "records" / "S9-0001").iterdir()}
    assert sorted(originals) == [".hl7", ".pdf"]
    message = originals[".hl7"].read_text()
    assert p.mrn not in message and "S9-0001" in message
    assert p.mrn not in pdf.extract_text(originals[".pdf"].read_bytes())
    for f in dicoms:
        assert p.mrn.encode() not in f.read_bytes()


def test_deid_command_names_a_record_of_another_patient(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIALPACS_DATA_DIR", str(tmp_path / "data"))
    rng = random.Random(33)
    src = tmp_path / "oru.hl7"
    src.write_bytes(hl7(person(rng), rng).data)
    result = runner.invoke(
        app, ["deid", str(src), "-o", str(tmp_path / "out"), "--patient-id", "SOMEONE-ELSE"]
    )
    assert result.exit_code == 1
    assert "is about patient" in " ".join(result.output.split())
