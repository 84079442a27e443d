"""Hostile input gets a clear per-file error and no output; the CLI end to end."""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from deid_helpers import SECRET, base_dataset, code_item, read, sequence, to_part10
from pydicom.dataset import Dataset
from typer.testing import CliRunner

from trialpacs.cli.main import app
from trialpacs.deid import Deidentifier, DeidError, Limits, TrialContext, load_profile
from trialpacs.deid.vault import KeyVault
from trialpacs.errors import InvalidInput

runner = CliRunner()


def engine(**kw: object) -> Deidentifier:
    return Deidentifier(load_profile("trial"), SECRET, TrialContext("T", "S"), **kw)  # type: ignore[arg-type]


def test_non_dicom_is_refused_with_a_reason() -> None:
    with pytest.raises(InvalidInput, match="not a DICOM"):
        engine().deidentify_bytes(b"hello world" * 20)


def test_truncated_file_is_refused() -> None:
    data = to_part10(base_dataset())
    with pytest.raises(InvalidInput, match="truncated"):
        engine().deidentify_bytes(data[:-3])


def test_huge_sequences_are_refused() -> None:
    ds = base_dataset()
    ds.ContentSequence = sequence(*[code_item() for _ in range(50)])
    with pytest.raises(DeidError, match="limit is 10"):
        engine(limits=Limits(max_items_per_sequence=10)).deidentify_bytes(to_part10(ds))


def test_deep_nesting_is_refused() -> None:
    ds = base_dataset()
    inner = Dataset()
    top = inner
    for _ in range(20):
        nxt = Dataset()
        inner.ContentSequence = sequence(nxt)
        inner = nxt
    ds.ContentSequence = sequence(top)
    with pytest.raises(InvalidInput, match="nested"):
        engine().deidentify_bytes(to_part10(ds))


def test_invalid_vr_gives_a_clear_error_or_a_clean_output() -> None:
    data = bytearray(to_part10(base_dataset()))
    idx = data.index(b"\x08\x00\x30\x10LO")  # (0008,1030) StudyDescription, explicit VR
    data[idx + 4 : idx + 6] = b"ZZ"
    try:
        out = read(engine().deidentify_bytes(bytes(data)))
    except InvalidInput as exc:
        assert str(exc)
    else:
        assert out.PatientIdentityRemoved == "YES"
        assert "Hartwell" not in str(out.get(0x00081030, ""))


def _write_inputs(root: Path) -> None:
    root.mkdir()
    (root / "good1.dcm").write_bytes(to_part10(base_dataset(patient_id="P1", sop="1.2.3.1")))
    (root / "good2.dcm").write_bytes(to_part10(base_dataset(patient_id="P2", sop="1.2.3.2")))
    (root / "notes.txt").write_bytes(b"not dicom at all")
    (root / "cut.dcm").write_bytes(to_part10(base_dataset(sop="1.2.3.3"))[:-5])


def _outputs(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*") if p.is_file())


def test_cli_deid_src_out_works_and_reports_failures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIALPACS_DATA_DIR", str(tmp_path / "data"))
    _write_inputs(tmp_path / "in")
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["deid", str(tmp_path / "in"), "-o", str(out), "--trial", "T1", "--site", "S9"]
    )
    assert result.exit_code == 1, result.output
    assert "notes.txt" in result.output and "not a DICOM" in result.output
    assert "cut.dcm" in result.output and "truncated" in result.output
    files = _outputs(out)
    assert len(files) == 2  # the two good inputs, nothing partial
    for f in files:
        assert f.suffix == ".dcm" and f.stem.startswith("2.25.")
        assert "good" not in str(f)
        assert read(f.read_bytes()).PatientID in ("S9-0001", "S9-0002")
    # the secret was created on first use, outside OUT
    assert (tmp_path / "data" / "deid-secret").is_file()
    assert not any("secret" in p.name or "vault" in p.name for p in files)


def test_cli_consistent_across_runs_and_verify_and_lookup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIALPACS_DATA_DIR", str(tmp_path / "data"))
    src = tmp_path / "a.dcm"
    src.write_bytes(to_part10(base_dataset()))
    r1 = runner.invoke(app, ["deid", str(src), "-o", str(tmp_path / "o1"), "--site", "S1"])
    r2 = runner.invoke(app, ["deid", "run", str(src), "-o", str(tmp_path / "o2"), "--site", "S1"])
    assert r1.exit_code == 0 and r2.exit_code == 0, r1.output + r2.output
    f1, f2 = _outputs(tmp_path / "o1"), _outputs(tmp_path / "o2")
    assert [p.relative_to(tmp_path / "o1") for p in f1] == [
        p.relative_to(tmp_path / "o2") for p in f2
    ]
    assert f1[0].read_bytes() == f2[0].read_bytes()

    ok = runner.invoke(app, ["deid", "verify", str(tmp_path / "o1")])
    assert ok.exit_code == 0, ok.output

    found = runner.invoke(
        app, ["deid", "lookup", "S1-0001", "--who", "dr.monitor", "--reason", "SAE follow-up"]
    )
    assert found.exit_code == 0, found.output
    assert "MRN12345" in found.output
    secret = (tmp_path / "data" / "deid-secret").read_bytes().strip()
    with KeyVault(tmp_path / "data" / "deid-vault.sqlite", secret) as kv:
        assert kv.lookup_log()[-1][1:] == ("dr.monitor", "SAE follow-up", 1)
    # the vault is encrypted at rest: no original value in the file
    raw = (tmp_path / "data" / "deid-vault.sqlite").read_bytes()
    assert b"MRN12345" not in raw and b"HARTWELL" not in raw


def test_verify_fails_loudly_on_residual_phi(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIALPACS_DATA_DIR", str(tmp_path / "data"))
    src = tmp_path / "a.dcm"
    src.write_bytes(to_part10(base_dataset()))
    assert runner.invoke(app, ["deid", str(src), "-o", str(tmp_path / "o")]).exit_code == 0
    f = _outputs(tmp_path / "o")[0]
    ds = read(f.read_bytes())
    item = Dataset()
    item.add_new(0x00091010, "LO", "ACME")
    ds.add_new(0x00091010, "LO", "ACME")
    ds.add_new(0x00091001, "LO", "seen by MRN12345")  # a private value with the original ID
    ds.ImageComments = "call 555-123-4567"
    ds.save_as(f)
    bad = runner.invoke(app, ["deid", "verify", str(tmp_path / "o")])
    assert bad.exit_code == 1
    assert "(0009,1001)" in bad.output and "MRN12345" in bad.output
    assert "(0020,4000)" in bad.output and "PHONE" in bad.output


def test_zip_inputs_traversal_and_bombs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIALPACS_DATA_DIR", str(tmp_path / "data"))
    archive = tmp_path / "in.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("study/ok.dcm", to_part10(base_dataset(sop="1.2.3.9")))
        zf.writestr("../../evil.dcm", to_part10(base_dataset(sop="1.2.3.10")))
        zf.writestr("bomb.dcm", b"\x00" * (8 << 20))
    out = tmp_path / "out"
    result = runner.invoke(app, ["deid", str(archive), "-o", str(out)])
    assert result.exit_code == 1
    assert "unsafe path" in result.output
    assert "zip bomb" in result.output
    assert len(_outputs(out)) == 1
    assert not (tmp_path / "evil.dcm").exists()


def test_output_inside_data_dir_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIALPACS_DATA_DIR", str(tmp_path / "out" / "data"))
    src = tmp_path / "a.dcm"
    src.write_bytes(to_part10(base_dataset()))
    result = runner.invoke(app, ["deid", str(src), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "must never be written" in result.output


@pytest.mark.skipif(shutil.which("dcmdump") is None, reason="dcmtk not installed")
def test_outputs_readable_by_dcmdump(tmp_path: Path, testdata: Path) -> None:
    deid = engine()
    for path in [
        testdata / "ct" / "CT1_UNC.dcm",
        *sorted((testdata / "mr-brain-series").glob("*.dcm"))[:2],
    ]:
        out = tmp_path / "x.dcm"
        out.write_bytes(deid.deidentify_bytes(path.read_bytes()))
        proc = subprocess.run(
            ["dcmdump", "-E", str(out)], capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, proc.stderr
        assert "PatientIdentityRemoved" in proc.stdout
        assert "E:" not in proc.stderr
