"""The engine with the real pixel cleaner (rapidocr): transfer syntax, masking, marks.

These run the OCR models (a few seconds in all); the cleaner is built once.
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from deid_helpers import SECRET, base_dataset, read, text_image, to_part10, to_part10_lossy_j2k
from numpy.typing import NDArray
from pydicom import dcmread
from pydicom.uid import JPEG2000, ExplicitVRLittleEndian
from typer.testing import CliRunner

from trialpacs.cli.main import app
from trialpacs.deid import Deidentifier, DeidError, TrialContext, load_profile, pixel_cleaner_for
from trialpacs.deid.engine import output_transfer_syntax
from trialpacs.deid.pixels import OcrPixelCleaner, TextRegion, default_cleaner

CR_IMAGE = "1.2.840.10008.5.1.4.1.1.1"


@cache
def cleaner() -> OcrPixelCleaner:
    return default_cleaner()


def engine() -> Deidentifier:
    return Deidentifier(
        load_profile("trial"),
        SECRET,
        TrialContext("T", "S"),
        pixel_cleaner=cleaner(),
        use_ner=False,
    )


def test_lossy_j2k_input_masked_is_written_uncompressed_and_decodes() -> None:
    """Regression: the writer used the input's syntax for pixels the cleaner stored natively."""
    ds, (x0, y0, x1, y1) = text_image(modality="CR", sop_class=CR_IMAGE)
    data = to_part10_lossy_j2k(ds)
    assert read(data).file_meta.TransferSyntaxUID == JPEG2000
    out, result = engine().deidentify_part10(data)
    assert result.pixel is not None and result.pixel.modified
    assert result.dataset.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    back = dcmread(io.BytesIO(out))
    assert back.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    pixels = back.pixel_array
    assert pixels.shape == (256, 256)
    assert int(pixels[y0:y1, x0:x1].max()) < 200  # the bright text is gone
    assert int(pixels[200:, 200:].mean()) > 20  # the rest is still the image
    assert back.LossyImageCompression == "01"
    assert back.BurnedInAnnotation == "NO"
    assert "113101" in [c.CodeValue for c in back.DeidentificationMethodCodeSequence]
    # and the bytes-only entry point gives the same readable file
    again = dcmread(io.BytesIO(engine().deidentify_bytes(data)))
    assert np.array_equal(again.pixel_array, pixels)


class CornerEngine:
    """Reports one text box in the top-left corner (the real detector takes ~12 s here)."""

    name = "corner"

    def detect(self, image: NDArray[np.uint8]) -> list[TextRegion]:
        return [TextRegion(10, 10, 300, 60, 0.9)]

    def recognize(self, image: NDArray[np.uint8], regions: list[TextRegion]) -> list[TextRegion]:
        return [TextRegion(r.x0, r.y0, r.x1, r.y1, r.score, "HARTWELL JANE", 0.99) for r in regions]


def test_real_lossy_j2k_cr_from_the_corpus_masked_and_readable(testdata: Path) -> None:
    """RG1_J2KI.dcm (lossy JPEG 2000 CR) through the real decode/mask/encode path."""
    data = (testdata / "cr" / "RG1_J2KI.dcm").read_bytes()
    deid = Deidentifier(
        load_profile("trial"),
        SECRET,
        TrialContext("T", "S"),
        pixel_cleaner=default_cleaner(engine=CornerEngine()),
        use_ner=False,
    )
    out, result = deid.deidentify_part10(data)
    assert result.pixel is not None and result.pixel.modified
    back = dcmread(io.BytesIO(out))
    assert back.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    pixels = back.pixel_array
    assert pixels.shape == (1955, 1841)
    assert result.pixel.boxes
    for b in result.pixel.boxes:  # each masked box is one fill value
        assert len(np.unique(pixels[b.y : b.y + b.height, b.x : b.x + b.width])) == 1
    assert len(np.unique(pixels[900:1000, 900:1000])) > 10  # the image is still there
    assert "ExtendedOffsetTable" not in back


def test_changed_syntax_with_untouched_pixels_is_refused() -> None:
    from trialpacs.dicom.parse import parse_part10

    ds = parse_part10(to_part10(base_dataset())).dataset
    ds.file_meta.TransferSyntaxUID = JPEG2000
    with pytest.raises(DeidError, match="left the pixel data"):
        output_transfer_syntax(ds, str(ExplicitVRLittleEndian))


# ---------------------------------------------------------------- the command

runner = CliRunner()


def _outputs(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*.dcm") if p.is_file())


def _cli_inputs(root: Path, testdata: Path) -> tuple[tuple[int, int, int, int], bytes]:
    root.mkdir()
    sc, ink = text_image()
    (root / "capture.dcm").write_bytes(to_part10(sc))
    mr = (testdata / "mr-brain" / "MR4_UNC.dcm").read_bytes()
    (root / "mr.dcm").write_bytes(mr)
    return ink, mr


def test_cli_trial_profile_masks_burned_in_name_and_skips_plain_mr(
    tmp_path: Path, testdata: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIALPACS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("COLUMNS", "200")
    (x0, y0, x1, y1), mr_bytes = _cli_inputs(tmp_path / "in", testdata)
    out = tmp_path / "out"
    result = runner.invoke(app, ["deid", str(tmp_path / "in"), "-o", str(out), "--site", "S1"])
    assert result.exit_code == 0, result.output
    assert "pixel policy" in result.output and "mask-all-text" in result.output
    assert "pixels not scanned: modality MR not at risk" in result.output
    assert "pixels OCR-scanned" in result.output
    by_modality = {str(read(p.read_bytes()).Modality): read(p.read_bytes()) for p in _outputs(out)}
    assert set(by_modality) == {"OT", "MR"}

    sc = by_modality["OT"]
    pixels = sc.pixel_array
    assert int(pixels[y0:y1, x0:x1].max()) < 200, "the burned-in name is still there"
    assert len(np.unique(pixels[y0:y1, x0:x1])) == 1  # one fill value over the text
    assert int(pixels[128:, 128:].max()) < 200 and int(pixels[128:, 128:].min()) > 0
    assert sc.BurnedInAnnotation == "NO"
    assert "113101" in [c.CodeValue for c in sc.DeidentificationMethodCodeSequence]

    mr = by_modality["MR"]
    original = dcmread(io.BytesIO(mr_bytes))
    assert np.array_equal(mr.pixel_array, original.pixel_array)  # not scanned, not touched
    assert "113101" not in [c.CodeValue for c in mr.DeidentificationMethodCodeSequence]


def test_cli_ocr_failure_lists_the_instance_as_failed_without_output(
    tmp_path: Path, testdata: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trialpacs.deid.pixels import OcrError, RapidOcrEngine

    def broken(self: object, image: object) -> list[TextRegion]:
        raise OcrError("model crashed")

    monkeypatch.setattr(RapidOcrEngine, "detect", broken)
    monkeypatch.setenv("TRIALPACS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("COLUMNS", "200")
    _cli_inputs(tmp_path / "in", testdata)
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["deid", str(tmp_path / "in"), "-o", str(out), "--pixel-policy", "mask-phi"]
    )
    assert result.exit_code == 1, result.output
    assert "capture.dcm" in result.output and "pixel cleaning failed" in result.output
    assert "mask-phi" in result.output
    files = _outputs(out)
    assert [str(read(p.read_bytes()).Modality) for p in files] == ["MR"]  # only the MR
    assert not any(p.name.startswith(".partial-") for p in out.rglob("*"))


def test_cli_pixel_policy_is_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIALPACS_DATA_DIR", str(tmp_path / "data"))
    src = tmp_path / "a.dcm"
    src.write_bytes(to_part10(base_dataset()))
    bad = runner.invoke(app, ["deid", str(src), "-o", str(tmp_path / "o"), "--pixel-policy", "x"])
    assert bad.exit_code == 2 and "mask-all-text" in bad.output
    basic = runner.invoke(
        app,
        ["deid", str(src), "-o", str(tmp_path / "o"), "--profile", "basic",
         "--pixel-policy", "mask-phi"],
    )  # fmt: skip
    assert basic.exit_code == 2 and "clean-pixel-data" in basic.output


def test_profile_pixel_policy(tmp_path: Path) -> None:
    from trialpacs.errors import InvalidInput

    assert load_profile("trial").pixel_policy == "mask-all-text"
    own = tmp_path / "p.yaml"
    own.write_text("extends: trial\npixel_policy: mask-phi\n")
    assert load_profile(own).pixel_policy == "mask-phi"
    own.write_text("extends: trial\npixel_policy: blur\n")
    with pytest.raises(InvalidInput, match="pixel_policy"):
        load_profile(own)
    assert pixel_cleaner_for(load_profile("basic")) is None
    phi = pixel_cleaner_for(load_profile("trial"), "mask-phi")
    assert isinstance(phi, OcrPixelCleaner) and phi.policy.name == "mask-phi"
