"""Every photometric interpretation, bit depth, multi-frame and compressed input.

A scripted engine reports one box in the top-left corner; after cleaning,
that box holds one uniform "black" value and every other stored value is
bit-identical to the decoded input, after a write/read round trip.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.pixels import convert_color_space
from pydicom.uid import (
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
)

from pixels._support import FixedEngine, image_dataset
from trialpacs.deid.pixels import (
    FramePlan,
    LayoutRules,
    OcrPixelCleaner,
    PreprocessOptions,
    ScanRules,
)
from trialpacs.deid.pixels.decode import decode


def _centre_box(ds: Dataset) -> tuple[int, int, int, int]:
    """A box over the middle of the image, where there is anatomy to overwrite."""
    rows, cols = int(ds.Rows), int(ds.Columns)
    w, h = max(4, cols // 5), max(4, rows // 8)
    x0, y0 = cols // 2 - w // 2, rows // 2 - h // 2
    return x0, y0, x0 + w, y0 + h


def _cleaner(box: tuple[int, int, int, int], frames: str = "all") -> OcrPixelCleaner:
    return OcrPixelCleaner(
        engine=FixedEngine([box]),
        scan_rules=ScanRules(mode="always"),
        layout_rules=LayoutRules(),
        preprocess=PreprocessOptions(),
        frame_plan=FramePlan(mode=frames),
        pad=0,
        pad_fraction=0.0,
        tighten=False,
        timeout_s=None,
    )


def _roundtrip(ds: Dataset) -> Dataset:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(buf.getvalue()))


def _check(ds: Dataset, expected_ts: str | None = None, frames: str = "all") -> Dataset:
    box = _centre_box(ds)
    before = decode(ds)
    report = _cleaner(box, frames).clean(ds, ["DOE^JANE"])
    assert report.scanned and report.modified
    assert ds.BurnedInAnnotation == "NO"
    assert report.boxes and all(b.text_sha256 for b in report.boxes)
    out = _roundtrip(ds)
    after = decode(out)
    if expected_ts is not None:
        assert out.file_meta.TransferSyntaxUID == expected_ts
    assert after.frames.shape == before.frames.shape
    x0, y0, x1, y1 = box
    inside = np.zeros(before.frames.shape[:3], dtype=bool)
    inside[:, y0:y1, x0:x1] = True
    # Everything outside the box is bit-identical.
    assert np.array_equal(after.frames[~inside], before.frames[~inside])
    # The box is one uniform value on every frame.
    for f in range(after.n_frames):
        patch = after.frames[f, y0:y1, x0:x1].reshape(-1, *after.frames.shape[3:])
        assert (patch == patch[0]).all()
    return out


def _in(ds: Dataset) -> tuple[int, int]:
    """(row, column) of a pixel inside the masked box."""
    x0, y0, _, _ = _centre_box(ds)
    return y0, x0


def test_monochrome2_16bit_unsigned(testdata: Path) -> None:
    ds = pydicom.dcmread(testdata / "mr-brain" / "MR4_UNC.dcm")
    out = _check(ds, ExplicitVRLittleEndian)
    frame = decode(out).frames[0]
    assert (
        frame[_in(out)]
        == decode(pydicom.dcmread(testdata / "mr-brain" / "MR4_UNC.dcm")).frames[0].min()
    )


def test_monochrome2_16bit_signed(testdata: Path) -> None:
    src = pydicom.dcmread(testdata / "ct" / "CT1_UNC.dcm")
    assert src.PixelRepresentation == 1
    out = _check(src, ExplicitVRLittleEndian)
    assert decode(out).frames.dtype == np.int16


def test_monochrome1_jpeg2000_lossless_stays_lossless(testdata: Path) -> None:
    ds = pydicom.dcmread(testdata / "cr" / "RG3_J2KR.dcm")
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    original_max = decode(ds).frames.max()
    out = _check(ds, JPEG2000Lossless)
    # MONOCHROME1: the largest value displays as black.
    assert decode(out).frames[0][_in(out)] == original_max


def test_jpeg2000_lossless_signed_ct(testdata: Path) -> None:
    _check(pydicom.dcmread(testdata / "ct" / "explicit_VR-UN.dcm"), JPEG2000Lossless)


def test_jpeg2000_lossy_is_not_recompressed(testdata: Path) -> None:
    ds = pydicom.dcmread(testdata / "cr" / "RG1_J2KI.dcm")
    out = _check(ds, ExplicitVRLittleEndian)
    assert out.LossyImageCompression == "01"


def test_monochrome2_8bit(testdata: Path) -> None:
    frame = decode(pydicom.dcmread(testdata / "mr-brain-series" / "brain_001.dcm")).frames[0]
    u8 = (frame.astype(float) / frame.max() * 255).astype(np.uint8)
    _check(image_dataset(u8, photometric="MONOCHROME2"), ExplicitVRLittleEndian)


def _rgb(testdata: Path) -> np.ndarray:
    frame = decode(pydicom.dcmread(testdata / "mr-brain-series" / "brain_005.dcm")).frames[0]
    u8 = (frame.astype(float) / frame.max() * 255).astype(np.uint8)
    return np.stack([u8, u8 // 2, 255 - u8], axis=-1)


def test_rgb_8bit(testdata: Path) -> None:
    out = _check(image_dataset(_rgb(testdata), photometric="RGB"), ExplicitVRLittleEndian)
    assert (decode(out).frames[0][_in(out)] == 0).all()


def test_rgb_planar_configuration_1(testdata: Path) -> None:
    rgb = _rgb(testdata)
    ds = image_dataset(rgb, photometric="RGB")
    ds.PlanarConfiguration = 1
    ds.PixelData = np.ascontiguousarray(rgb.transpose(2, 0, 1)).tobytes()
    out = _check(ds, ExplicitVRLittleEndian)
    assert out.PlanarConfiguration == 0


def test_ybr_full_native(testdata: Path) -> None:
    ybr = convert_color_space(_rgb(testdata), "RGB", "YBR_FULL")
    out = _check(image_dataset(ybr, photometric="YBR_FULL"), ExplicitVRLittleEndian)
    assert out.PhotometricInterpretation == "YBR_FULL"
    assert tuple(decode(out).frames[0][_in(out)]) == (0, 128, 128)


def test_ybr_full_422_native() -> None:
    ds = pydicom.dcmread(get_testdata_file("SC_ybr_full_422_uncompressed.dcm"))
    out = _check(ds, ExplicitVRLittleEndian)
    # Upsampled chroma is stored as YBR_FULL: no value is lost.
    assert out.PhotometricInterpretation == "YBR_FULL"


def test_ybr_full_422_jpeg_baseline_cine_masked_without_second_lossy_step() -> None:
    ds = pydicom.dcmread(get_testdata_file("examples_ybr_color.dcm"))
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
    assert int(ds.NumberOfFrames) == 30
    out = _check(ds, ExplicitVRLittleEndian, frames="sample")
    assert out.LossyImageCompression == "01"
    assert int(out.NumberOfFrames) == 30


def test_palette_color() -> None:
    ds = pydicom.dcmread(get_testdata_file("examples_palette.dcm"))
    out = _check(ds, ExplicitVRLittleEndian)
    assert out.PhotometricInterpretation == "PALETTE COLOR"
    from pydicom.pixels import apply_color_lut

    rgb = apply_color_lut(decode(out).frames[0], out)
    assert rgb[_in(out)].sum() == rgb.reshape(-1, 3).sum(axis=1).min()


def test_rgb_16bit_rle_stays_rle() -> None:
    ds = pydicom.dcmread(get_testdata_file("SC_rgb_rle_16bit.dcm"))
    assert ds.BitsAllocated == 16
    _check(ds, RLELossless)


def test_multiframe_rgb_rle() -> None:
    ds = pydicom.dcmread(get_testdata_file("SC_rgb_rle_2frame.dcm"))
    _check(ds, RLELossless)


def test_multiframe_enhanced_mr_every_frame(testdata: Path) -> None:
    ds = pydicom.dcmread(testdata / "mr-head-multiframe" / "emri_small.dcm")
    out = _check(ds, ExplicitVRLittleEndian)
    assert int(out.NumberOfFrames) == 10


def test_jpeg2000_rgb_lossless() -> None:
    ds = pydicom.dcmread(get_testdata_file("examples_jpeg2k.dcm"))
    out = _check(ds, JPEG2000Lossless)
    assert out.PhotometricInterpretation in ("YBR_RCT", "RGB")


def test_big_endian_stays_big_endian() -> None:
    ds = pydicom.dcmread(get_testdata_file("MR_small_bigendian.dcm"))
    _check(ds, ExplicitVRBigEndian)


@pytest.mark.parametrize("bits_stored", [12, 16])
def test_bits_stored_below_allocated(testdata: Path, bits_stored: int) -> None:
    frame = decode(pydicom.dcmread(testdata / "mr-brain-series" / "brain_010.dcm")).frames[0]
    arr = np.clip(frame.astype(np.int64), 0, (1 << bits_stored) - 1).astype(np.uint16)
    ds = image_dataset(arr, photometric="MONOCHROME2", bits_stored=bits_stored)
    _check(ds, ExplicitVRLittleEndian)
