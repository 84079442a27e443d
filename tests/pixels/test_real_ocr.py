"""The real engines on real images with planted text (about a second each)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from pixels._support import plant_text
from trialpacs.deid.pixels import TesseractEngine, default_cleaner
from trialpacs.deid.pixels.decode import decode
from trialpacs.deid.pixels.ocr import bundled_rapidocr_models


def _covered(report_boxes: list, shape: tuple[int, ...]) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    for b in report_boxes:
        m[b.y : b.y + b.height, b.x : b.x + b.width] = True
    return m


def test_bundled_models_present() -> None:
    models = bundled_rapidocr_models()
    assert all(p.is_file() for p in models.values())


def test_corner_text_masked_and_rest_bit_identical(testdata: Path) -> None:
    ds = pydicom.dcmread(testdata / "ct" / "CT1_UNC.dcm")
    frame = decode(ds).frames[0]
    planted, (x0, y0, x1, y1) = plant_text(frame, "DOE^JANE 1970-01-01", (6, 6), 16, frame.max())
    ds.PixelData = planted.astype("<i2").tobytes()
    ds.Modality = "OT"
    report = default_cleaner().clean(ds, ["DOE^JANE", "19700101"])
    assert report.scanned and report.modified
    out = decode(ds).frames[0]
    covered = _covered(report.boxes, out.shape)
    assert covered[y0:y1, x0:x1].all(), "planted text not fully masked"
    assert np.array_equal(out[~covered], planted[~covered])
    # Only the corner was masked.
    assert not covered[64:, :].any() and not covered[:, 256:].any()
    assert (out[y0:y1, x0:x1] == planted.min()).all()
    assert ds.BurnedInAnnotation == "NO"


def test_mask_phi_with_rapidocr_reads_the_name(testdata: Path) -> None:
    ds = pydicom.dcmread(testdata / "mr-brain" / "MR4_UNC.dcm")
    frame = decode(ds).frames[0]
    planted, ink = plant_text(frame, "HARTWELL JANE", (300, 470), 20, frame.max())
    planted, ink2 = plant_text(planted, "LIVER", (20, 20), 20, frame.max())
    ds.PixelData = planted.astype("<u2").tobytes()
    ds.Modality = "OT"
    report = default_cleaner("mask-phi").clean(ds, ["HARTWELL^JANE"])
    covered = _covered(report.boxes, planted.shape)
    x0, y0, x1, y1 = ink
    assert covered[y0:y1, x0:x1].all()
    x0, y0, x1, y1 = ink2
    assert not covered[y0:y1, x0:x1].any()


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract-ocr not installed")
def test_tesseract_engine_finds_clear_text() -> None:
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (400, 100), "white")
    ImageDraw.Draw(img).text(
        (10, 30), "PATIENT SMITH", fill="black", font=ImageFont.load_default(size=28)
    )
    regions = TesseractEngine(psm=11).detect(np.asarray(img))
    assert any("SMITH" in (r.text or "") for r in regions)
