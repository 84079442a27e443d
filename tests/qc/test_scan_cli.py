"""``trialpacs qc scan``: a knee labelled SHOULDER among shoulders is ranked first and flagged."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from qc.support import part10, series
from trialpacs.cli.main import app
from trialpacs.qc.synthetic import Source


def _write(folder: Path, datasets: list) -> None:  # type: ignore[type-arg]
    folder.mkdir(parents=True)
    for i, ds in enumerate(datasets):
        (folder / f"{i}.dcm").write_bytes(part10(ds))


def test_scan_ranks_the_planted_knee_first(tmp_path: Path, sources: dict[str, Source]) -> None:
    for seed in range(14):
        _write(tmp_path / f"shoulder{seed:02d}", series(sources["shoulder"], seed,
               StudyDescription="SHOULDER"))  # fmt: skip
    _write(tmp_path / "planted", series(sources["knee"], 7, StudyDescription="SHOULDER"))
    (tmp_path / "notes.txt").write_text("not DICOM")
    result = CliRunner().invoke(
        app, ["qc", "scan", str(tmp_path), "--expect", "SHOULDER"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("│")]
    assert "planted" in lines[0] and "FLAG" in lines[0] and "image is an outlier" in lines[0]
    assert "15 series, 1 flagged" in result.output


def test_scan_names_bad_input(tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(app, ["qc", "scan", str(tmp_path), "--expect", "ELBOWPIT"])
    assert r.exit_code == 2 and "unknown anatomy 'ELBOWPIT'" in r.output
    r = runner.invoke(app, ["qc", "scan", str(tmp_path), "--expect", "KNEE"])
    assert r.exit_code == 2 and "no DICOM files found" in r.output


def test_scan_flags_a_localizer_unless_accepted(tmp_path: Path, sources: dict[str, Source]) -> None:
    for seed in range(12):
        _write(tmp_path / f"shoulder{seed:02d}", series(sources["shoulder"], seed,
               StudyDescription="SHOULDER"))  # fmt: skip
    _write(tmp_path / "scout", series(sources["shoulder"], 40, "localizer",
           StudyDescription="SHOULDER"))  # fmt: skip
    args = ["qc", "scan", str(tmp_path), "--expect", "SHOULDER"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("│")]
    scout = next(line for line in lines if "scout" in line)
    assert "FLAG" in scout and "localizer filed as diagnostic series" in scout
    accepted = CliRunner().invoke(app, [*args, "--accept-localizers"], env={"COLUMNS": "250"})
    assert accepted.exit_code == 0, accepted.output
    assert "localizer filed" not in accepted.output
