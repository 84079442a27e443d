"""`trialpacs import`: files, folders and zips, with hostile archives refused."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from dicomfactory import make_bytes
from trialpacs.errors import InvalidInput
from trialpacs.ingest.sources import ZipLimits, iter_sources


def run_import(data_dir: Path, *paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "trialpacs.cli.main",
            "import",
            "--data-dir",
            str(data_dir),
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_import_folder_and_zip(tmp_path: Path, testdata: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(testdata / "mr-brain-series", src / "brain")
    (src / "notes.txt").write_text("not dicom")
    archive = tmp_path / "prostate.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted((testdata / "mr-prostate-adc").glob("*.dcm")):
            zf.write(p, f"prostate/{p.name}")
    result = run_import(tmp_path / "data", src, archive)
    assert result.returncode == 1  # notes.txt was refused
    assert "stored" in result.stdout and "40" in result.stdout
    assert "notes.txt" in result.stdout and "not a DICOM" in result.stdout
    again = run_import(tmp_path / "data", archive)
    assert again.returncode == 0
    assert "already stored" in again.stdout


def test_zip_path_traversal_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "evil.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("../../escape.dcm", make_bytes())
    with pytest.raises(InvalidInput, match="path traversal"):
        list(iter_sources([bad]))
    result = run_import(tmp_path / "data", bad)
    assert result.returncode == 2
    assert "path traversal" in result.stderr


def test_zip_bomb_is_refused(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.dcm", b"\0" * (50 * 1024 * 1024))
    with pytest.raises(InvalidInput, match="zip bomb"):
        list(iter_sources([bomb]))


def test_zip_total_size_limit(tmp_path: Path) -> None:
    big = tmp_path / "big.zip"
    with zipfile.ZipFile(big, "w") as zf:
        for i in range(3):
            zf.writestr(f"{i}.dcm", make_bytes())
    with pytest.raises(InvalidInput, match="expands to more than"):
        list(iter_sources([big], ZipLimits(max_total_bytes=500)))


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no such file"):
        list(iter_sources([tmp_path / "nope"]))
