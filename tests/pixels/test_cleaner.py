"""Cleaner behaviour: failing closed, scan decisions, layouts, graphics, cine unions."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pydicom
import pytest

from pixels._support import (
    FailingEngine,
    FixedEngine,
    SlowEngine,
    WhiteInkEngine,
    image_dataset,
    plant_text,
)
from trialpacs.deid.pixel_hook import PixelCleaner, PixelCleanError
from trialpacs.deid.pixels import (
    FramePlan,
    LayoutRules,
    OcrPixelCleaner,
    PreprocessOptions,
    ScanRules,
    clean_graphics,
    default_layout_rules,
    load_layout_rules,
    make_policy,
)
from trialpacs.deid.pixels.decode import decode
from trialpacs.deid.pixels.mask import ALL_FRAMES


def _mr_u8(testdata: Path, name: str = "brain_007.dcm") -> np.ndarray:
    frame = decode(pydicom.dcmread(testdata / "mr-brain-series" / name)).frames[0]
    return (frame.astype(float) / frame.max() * 254).astype(np.uint8)


def _cleaner(engine: object, **kw: object) -> OcrPixelCleaner:
    args: dict[str, object] = {
        "engine": engine,
        "scan_rules": ScanRules(),
        "layout_rules": LayoutRules(),
        "preprocess": PreprocessOptions(),
    }
    args.update(kw)
    return OcrPixelCleaner(**args)  # type: ignore[arg-type]


def test_is_a_pixel_cleaner() -> None:
    assert isinstance(_cleaner(FixedEngine([])), PixelCleaner)


def test_ocr_failure_raises_and_leaves_pixels_alone(testdata: Path) -> None:
    ds = image_dataset(_mr_u8(testdata), photometric="MONOCHROME2", modality="US")
    before = ds.PixelData
    with pytest.raises(PixelCleanError, match="model crashed"):
        _cleaner(FailingEngine()).clean(ds, ["DOE^JANE"])
    assert ds.PixelData == before
    assert "BurnedInAnnotation" not in ds


def test_ocr_timeout_raises(testdata: Path) -> None:
    ds = image_dataset(_mr_u8(testdata), photometric="MONOCHROME2", modality="US")
    with pytest.raises(PixelCleanError, match="timed out"):
        _cleaner(SlowEngine(2.0), timeout_s=0.2).clean(ds, [])


def test_ocr_failure_keeps_instance_out_of_deid_output(testdata: Path) -> None:
    """Through the header engine: the instance is refused, nothing is returned."""
    from trialpacs.deid.engine import Deidentifier
    from trialpacs.deid.profile import load_profile

    ds = image_dataset(_mr_u8(testdata), photometric="MONOCHROME2", modality="US")
    deid = Deidentifier(load_profile("trial"), b"k" * 32, pixel_cleaner=_cleaner(FailingEngine()))
    with pytest.raises(PixelCleanError):
        deid.deidentify(ds)


def test_undecodable_pixels_raise(testdata: Path) -> None:
    ds = image_dataset(_mr_u8(testdata), photometric="MONOCHROME2", modality="US")
    ds.PixelData = ds.PixelData[:100]
    with pytest.raises(PixelCleanError, match="cannot be checked"):
        _cleaner(FixedEngine([])).clean(ds, [])


def test_low_risk_modality_is_not_scanned(testdata: Path) -> None:
    ds = pydicom.dcmread(testdata / "mr-brain-series" / "brain_001.dcm")
    engine = FixedEngine([(0, 0, 10, 10)])
    report = _cleaner(engine).clean(ds, [])
    assert not report.scanned and not report.modified
    assert "not at risk" in report.reason
    assert engine.calls == 0


def test_burned_in_yes_forces_scan(testdata: Path) -> None:
    ds = pydicom.dcmread(testdata / "mr-brain-series" / "brain_001.dcm")
    ds.BurnedInAnnotation = "YES"
    report = _cleaner(FixedEngine([])).clean(ds, [])
    assert report.scanned and "BurnedInAnnotation=YES" in report.reason
    assert ds.BurnedInAnnotation == "NO"


def test_scan_rules_by_risk() -> None:
    rules = ScanRules()
    for modality in ("US", "SC", "OT", "XA", "RF", "CR", "DX", "ES"):
        assert rules.decide(_ds(modality)).scan
    assert not rules.decide(_ds("MR")).scan
    assert not rules.decide(_ds("CT")).scan
    sc = _ds("NM")
    sc.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    assert rules.decide(sc).reason == "secondary capture SOP class"
    assert ScanRules.from_config(mode="always").decide(_ds("MR")).scan
    assert not ScanRules.from_config(mode="never").decide(_ds("US")).scan
    assert ScanRules.from_config(add_modalities=["mg"]).decide(_ds("MG")).scan
    with pytest.raises(ValueError):
        ScanRules.from_config(mode="sometimes")


def _ds(modality: str) -> pydicom.Dataset:
    ds = pydicom.Dataset()
    ds.Modality = modality
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    return ds


def test_boxes_are_recorded_with_hashed_text(testdata: Path) -> None:
    ds = image_dataset(_mr_u8(testdata), photometric="MONOCHROME2", modality="US")
    report = _cleaner(FixedEngine([(100, 100, 160, 120)], text="DOE^JANE")).clean(ds, [])
    (box,) = report.boxes
    assert box.frame == 0 and box.reason == "ocr:text"
    assert box.text_sha256 == hashlib.sha256(b"DOE^JANE").hexdigest()
    assert "DOE" not in repr(report)
    assert box.x <= 100 and box.x + box.width >= 160


def test_allow_list_keeps_orientation_marker(testdata: Path) -> None:
    ds = image_dataset(_mr_u8(testdata), photometric="MONOCHROME2", modality="US")
    before = ds.PixelData
    report = _cleaner(FixedEngine([(100, 100, 110, 112)], text="R")).clean(ds, [])
    assert report.boxes == [] and not report.modified
    assert ds.PixelData == before
    assert "1 kept" in report.reason


def test_mask_phi_keeps_non_identifying_text(testdata: Path) -> None:
    ds = image_dataset(_mr_u8(testdata), photometric="MONOCHROME2", modality="US")
    cleaner = _cleaner(
        FixedEngine([(10, 10, 90, 20)], text="LIVER LONG"), policy=make_policy("mask-phi")
    )
    assert cleaner.clean(ds, ["DOE^JANE"]).boxes == []
    ds = image_dataset(_mr_u8(testdata), photometric="MONOCHROME2", modality="US")
    cleaner = _cleaner(
        FixedEngine([(10, 10, 90, 20)], text="J0HN DOE"), policy=make_policy("mask-phi")
    )
    (box,) = cleaner.clean(ds, ["DOE^JOHN"]).boxes
    assert box.reason.startswith("ocr:phi:header-value")


def test_corner_text_masked_rest_bit_identical_scripted(testdata: Path) -> None:
    base = _mr_u8(testdata)
    planted, (x0, y0, x1, y1) = plant_text(base, "DOE^JANE", (4, 3), 14, 255)
    ds = image_dataset(planted, photometric="MONOCHROME2", modality="US")
    report = _cleaner(WhiteInkEngine()).clean(ds, ["DOE^JANE"])
    out = decode(ds).frames[0]
    (b,) = report.boxes
    inside = np.zeros(out.shape, dtype=bool)
    inside[b.y : b.y + b.height, b.x : b.x + b.width] = True
    assert inside[y0:y1, x0:x1].all()
    assert np.array_equal(out[~inside], planted[~inside])
    assert (out[inside] == planted.min()).all()


def test_cine_sampling_masks_union_on_every_frame(testdata: Path) -> None:
    frames = []
    for i in range(12):
        planted, ink = plant_text(
            _mr_u8(testdata, f"brain_{i + 1:03d}.dcm"), "MRN 12345", (150, 230), 12, 255
        )
        frames.append(planted)
    cine = np.stack(frames)
    ds = image_dataset(cine, photometric="MONOCHROME2", modality="US", frames=True)
    engine = WhiteInkEngine()
    report = _cleaner(engine, frame_plan=FramePlan(mode="sample", sample_size=3)).clean(ds, [])
    assert engine.calls == 4  # three sampled frames and the static composite
    assert report.boxes and all(b.frame == ALL_FRAMES for b in report.boxes)
    out = decode(ds).frames
    x0, y0, x1, y1 = ink
    assert (out[:, y0:y1, x0:x1] == 0).all()
    assert "3 of 12 frames" in report.reason


def test_layout_rule_masks_without_ocr(testdata: Path, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n"
        "  - id: acme-banner\n"
        "    match: {modality: MR, manufacturer: ACME, rows: 256}\n"
        "    regions: [[0, 0, 256, 20]]\n"
    )
    ds = image_dataset(_mr_u8(testdata) + 1, photometric="MONOCHROME2", modality="MR")
    ds.Manufacturer = "Acme Medical"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    engine = FixedEngine([])
    report = _cleaner(engine, layout_rules=load_layout_rules(rules)).clean(ds, [])
    assert not report.scanned and report.modified and engine.calls == 0
    assert [b.reason for b in report.boxes] == ["layout:acme-banner"]
    out = decode(ds).frames[0]
    assert (out[:20] == out[:20].min()).all() and (out[:20].min() == out.min())


def test_shipped_layouts_load_and_match() -> None:
    rules = default_layout_rules()
    assert len(rules.rules) >= 10
    ds = pydicom.Dataset()
    ds.Modality = "US"
    ds.Manufacturer = "Philips Medical Systems"
    ds.ManufacturerModelName = "iU22"
    ds.Rows, ds.Columns = 480, 640
    assert [r.id for r in rules.matching(ds)] == ["philips-iu22-480"]


def test_bad_layout_rules_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown match keys"):
        load_layout_rules(
            {"rules": [{"id": "x", "match": {"colour": "red"}, "regions": [[0, 0, 1, 1]]}]}
        )
    with pytest.raises(ValueError, match="matches every image"):
        load_layout_rules({"rules": [{"id": "x", "regions": [[0, 0, 1, 1]]}]})


def test_clean_graphics_removes_overlays(testdata: Path) -> None:
    ds = pydicom.dcmread(testdata / "mr-abdomen" / "MR-SIEMENS-DICOM-WithOverlays.dcm")
    assert any(0x6000 <= e.tag.group <= 0x601E for e in ds)
    removed = clean_graphics(ds)
    assert any(r.startswith("overlay group 60") for r in removed)
    assert not any(0x6000 <= e.tag.group <= 0x601E for e in ds)


def test_cleaner_removes_overlays_even_when_not_scanning(testdata: Path) -> None:
    ds = pydicom.dcmread(testdata / "mr-abdomen" / "MR-SIEMENS-DICOM-WithOverlays.dcm")
    report = _cleaner(FixedEngine([])).clean(ds, [])
    assert not report.scanned and report.modified
    assert "removed overlay group" in report.reason
