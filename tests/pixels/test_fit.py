"""Fitting mask boxes to the text pixels: tight boxes, banners, faint text, lost line ends."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageDraw, ImageFont

from pixels._support import FixedEngine, WhiteInkEngine, image_dataset
from trialpacs.deid.pixels import FramePlan, LayoutRules, OcrPixelCleaner, ScanRules
from trialpacs.deid.pixels.decode import decode
from trialpacs.deid.pixels.mask import ALL_FRAMES, extend_along_line, text_extent
from trialpacs.deid.pixels.ocr import TextRegion


def _anatomy(testdata: Path, name: str = "brain_007.dcm") -> np.ndarray:
    """A real MR slice as 8-bit grey RGB, the picture the OCR engine sees."""
    frame = decode(pydicom.dcmread(testdata / "mr-brain-series" / name)).frames[0]
    g = (frame.astype(float) / frame.max() * 240).astype(np.uint8)
    return np.repeat(g[:, :, None], 3, axis=2)


def _draw(
    img: np.ndarray, text: str, xy: tuple[int, int], size: int, colour: tuple[int, int, int]
) -> tuple[int, int, int, int]:
    """Draw ``text`` (exact colour, no anti-aliasing) and return its ink bbox."""
    ink = Image.new("L", (img.shape[1], img.shape[0]), 0)
    ImageDraw.Draw(ink).text(xy, text, fill=255, font=ImageFont.load_default(size=size))
    m = np.asarray(ink) > 96
    img[m] = colour
    ys, xs = np.nonzero(m)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _region(box: tuple[int, int, int, int], slack: int) -> TextRegion:
    x0, y0, x1, y1 = box
    return TextRegion(x0 - slack, y0 - slack, x1 + slack, y1 + slack)


def test_bright_text_over_anatomy_fits_the_ink(testdata: Path) -> None:
    img = _anatomy(testdata)
    ink = _draw(img, "HARTWELL JANE", (60, 120), 16, (255, 255, 255))
    fit = text_extent(img, _region(ink, 5))
    assert fit.exact and fit.box == ink


def test_grey_text_fainter_than_the_anatomy_is_found(testdata: Path) -> None:
    """Grey text over bright anatomy: the anatomy varies more than the text differs."""
    img = _anatomy(testdata)
    ink = _draw(img, "MRN 00456789", (70, 110), 14, (150, 150, 150))
    fit = text_extent(img, _region(ink, 4))
    x0, y0, x1, y1 = fit.box
    assert x0 <= ink[0] and y0 <= ink[1] and x1 >= ink[2] and y1 >= ink[3]
    # Tight: at most a pixel of halo on each side.
    assert x1 - x0 <= ink[2] - ink[0] + 2 and y1 - y0 <= ink[3] - ink[1] + 2


def test_dark_text_on_a_light_banner_leaves_the_banner(testdata: Path) -> None:
    img = _anatomy(testdata)
    img[95:125, 40:210] = 235
    ink = _draw(img, "DOB 1962-01-15", (50, 100), 16, (20, 20, 20))
    fit = text_extent(img, TextRegion(34, 90, 216, 130))
    assert fit.exact
    x0, y0, x1, y1 = fit.box
    assert x0 <= ink[0] and y0 <= ink[1] and x1 >= ink[2] and y1 >= ink[3]
    assert x0 >= ink[0] - 1 and x1 <= ink[2] + 1 and y0 >= ink[1] - 1 and y1 <= ink[3] + 1


def test_two_colour_line_keeps_both_parts(testdata: Path) -> None:
    img = _anatomy(testdata)
    img[:] = 0
    label = _draw(img, "Name:", (20, 40), 16, (150, 150, 150))
    value = _draw(img, "DOE JOHN", (80, 40), 16, (255, 255, 255))
    fit = text_extent(img, TextRegion(14, 34, value[2] + 6, 62))
    assert fit.box[0] <= label[0] and fit.box[2] >= value[2]


def test_line_cut_by_the_detector_is_followed(testdata: Path) -> None:
    img = _anatomy(testdata)
    ink = _draw(img, "PATIENT: DOE, JOHN", (20, 200), 14, (255, 255, 0))
    # The detector saw only the first half of the line.
    half = TextRegion(ink[0] - 3, ink[1] - 3, (ink[0] + ink[2]) // 2, ink[3] + 3)
    fit = text_extent(img, half)
    assert fit.box[2] < ink[2]
    x0, y0, x1, y1 = extend_along_line(img, fit)
    # The followed half holds the comma and the J's descender, below the
    # rows of the first half: the box takes them in and stops there.
    assert x0 <= ink[0] and x1 >= ink[2] and (y0, y1) == (ink[1], ink[3])


def test_line_end_seen_by_the_detector_is_not_extended(testdata: Path) -> None:
    img = _anatomy(testdata)
    ink = _draw(img, "ID 7781234", (20, 200), 14, (255, 255, 255))
    _draw(img, "R", (ink[2] + 20, 200), 14, (255, 255, 255))
    fit = text_extent(img, _region(ink, 5))
    assert extend_along_line(img, fit) == fit.box == ink


def test_anti_aliased_edges_are_covered(testdata: Path) -> None:
    img = _anatomy(testdata)
    img[:] = 20
    alpha = Image.new("L", (img.shape[1], img.shape[0]), 0)
    ImageDraw.Draw(alpha).text(
        (40, 60), "Jane Q Hartwell", fill=255, font=ImageFont.load_default(size=15)
    )
    a = np.asarray(alpha).astype(float)[:, :, None] / 255.0
    img[:] = (20 * (1 - a) + 250 * a).astype(np.uint8)
    # Pixels at least ~40 % text (the evaluation labels ink the same way).
    ys, xs = np.nonzero(np.asarray(alpha) > 96)
    fit = text_extent(
        img, TextRegion(int(xs.min()) - 5, int(ys.min()) - 5, int(xs.max()) + 6, int(ys.max()) + 6)
    )
    x0, y0, x1, y1 = fit.box
    assert x0 <= xs.min() and y0 <= ys.min() and x1 > xs.max() and y1 > ys.max()


def test_box_without_clear_ink_is_kept_whole(testdata: Path) -> None:
    img = np.full((64, 200, 3), 90, dtype=np.uint8)
    fit = text_extent(img, TextRegion(10, 10, 150, 40))
    assert not fit.exact and fit.box == (10, 10, 150, 40)


def test_fitted_box_gets_no_padding_and_rest_is_bit_identical(testdata: Path) -> None:
    base = _anatomy(testdata)[:, :, 0]
    planted = base.copy()
    ink = Image.new("L", (base.shape[1], base.shape[0]), 0)
    ImageDraw.Draw(ink).text((30, 100), "DOE^JANE", fill=255, font=ImageFont.load_default(size=14))
    m = np.asarray(ink) > 96
    planted[m] = 255
    ys, xs = np.nonzero(m)
    x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    ds = image_dataset(planted, photometric="MONOCHROME2", modality="US")
    cleaner = OcrPixelCleaner(
        engine=FixedEngine([(x0 - 4, y0 - 4, x1 + 4, y1 + 4)]),
        scan_rules=ScanRules(),
        layout_rules=LayoutRules(),
    )
    (box,) = cleaner.clean(ds, []).boxes
    assert (box.x, box.y, box.x + box.width, box.y + box.height) == (x0, y0, x1, y1)
    out = decode(ds).frames[0]
    inside = np.zeros(out.shape, dtype=bool)
    inside[y0:y1, x0:x1] = True
    assert np.array_equal(out[~inside], planted[~inside])


def test_every_frame_mode_also_masks_the_static_composite(testdata: Path) -> None:
    frames = np.stack([_anatomy(testdata, f"brain_{i + 1:03d}.dcm")[:, :, 0] for i in range(4)])
    frames[:, 10:20, 10:60] = 255  # a fixed banner on every frame
    ds = image_dataset(frames, photometric="MONOCHROME2", modality="US", frames=True)
    engine = WhiteInkEngine()
    cleaner = OcrPixelCleaner(
        engine=engine,
        scan_rules=ScanRules(),
        layout_rules=LayoutRules(),
        frame_plan=FramePlan(mode="all"),
    )
    report = cleaner.clean(ds, [])
    assert engine.calls == 5  # four frames and the static composite
    assert any(b.frame == ALL_FRAMES for b in report.boxes)
    assert "static composite" in report.reason
    assert (decode(ds).frames[:, 10:20, 10:60] == 0).all()


@pytest.mark.parametrize("name", ["brain_007.dcm"])
def test_text_free_image_stays_bit_identical_with_rapidocr(testdata: Path, name: str) -> None:
    from trialpacs.deid.pixels import default_cleaner

    ds = pydicom.dcmread(testdata / "mr-brain-series" / name)
    ds.Modality = "OT"
    before = ds.PixelData
    report = default_cleaner().clean(ds, ["DOE^JANE"])
    assert report.scanned and report.boxes == [] and not report.modified
    assert ds.PixelData == before


def test_grey_text_over_anatomy_masked_with_rapidocr(testdata: Path) -> None:
    from trialpacs.deid.pixels import default_cleaner

    ds = pydicom.dcmread(testdata / "mr-brain" / "MR4_UNC.dcm")
    frame = decode(ds).frames[0]
    lo, hi = float(np.percentile(frame, 1)), float(frame.max())
    ink = Image.new("L", (frame.shape[1], frame.shape[0]), 0)
    ImageDraw.Draw(ink).text(
        (100, 250), "HARTWELL JANE Q", fill=255, font=ImageFont.load_default(size=20)
    )
    m = np.asarray(ink) > 96
    planted = frame.copy()
    planted[m] = np.asarray(lo + 0.6 * (hi - lo)).astype(frame.dtype)
    ds.PixelData = planted.astype("<u2").tobytes()
    ds.Modality = "OT"
    report = default_cleaner().clean(ds, ["HARTWELL^JANE^Q"])
    covered = np.zeros(planted.shape, dtype=bool)
    for b in report.boxes:
        covered[b.y : b.y + b.height, b.x : b.x + b.width] = True
    ys, xs = np.nonzero(m)
    assert covered[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].all()
    # Tight: little beyond the text.
    assert covered.sum() <= 1.3 * (np.ptp(ys) + 1) * (np.ptp(xs) + 1)


class _SecondLookEngine:
    """Reports one box found only on a second look."""

    name = "second-look"

    def __init__(self, box: tuple[int, int, int, int]) -> None:
        self.box = box

    def detect(self, image: np.ndarray) -> list[TextRegion]:
        return [TextRegion(*self.box, second_look=True)]

    def recognize(self, image: np.ndarray, regions: list[TextRegion]) -> list[TextRegion]:
        return regions


def test_second_look_box_needs_drawn_text(testdata: Path) -> None:
    base = _anatomy(testdata)[:, :, 0]
    ds = image_dataset(base, photometric="MONOCHROME2", modality="US")
    cleaner = OcrPixelCleaner(
        engine=_SecondLookEngine((60, 100, 180, 130)),
        scan_rules=ScanRules(),
        layout_rules=LayoutRules(),
    )
    assert cleaner.clean(ds, []).boxes == []
    planted = base.copy()
    ink = Image.new("L", (base.shape[1], base.shape[0]), 0)
    ImageDraw.Draw(ink).text(
        (70, 106), "ID 7781234", fill=255, font=ImageFont.load_default(size=14)
    )
    planted[np.asarray(ink) > 96] = 255
    ds = image_dataset(planted, photometric="MONOCHROME2", modality="US")
    (box,) = cleaner.clean(ds, []).boxes
    assert box.x >= 60 and box.x + box.width <= 180


def _ink_box(
    img: np.ndarray, text: str, xy: tuple[int, int], size: int, colour: tuple[int, int, int]
) -> tuple[int, int, int, int]:
    return _draw(img, text, xy, size, colour)


def test_descenders_cut_by_the_detector_box_are_masked_on_rgb(testdata: Path) -> None:
    """The detector box ends a row above the descenders' tips ("J", "p", "y", "g")."""
    rgb = _anatomy(testdata)
    ink = _ink_box(rgb, "Jpyg quay", (40, 100), 14, (0, 255, 0))
    x0, y0, x1, y1 = ink
    ds = image_dataset(rgb.copy(), photometric="RGB", modality="US")
    cleaner = OcrPixelCleaner(
        engine=FixedEngine([(x0 - 3, y0 - 3, x1 + 3, y1 - 1)]),
        scan_rules=ScanRules(),
        layout_rules=LayoutRules(),
        ink_key=False,
    )
    (box,) = cleaner.clean(ds, []).boxes
    assert (box.x, box.y, box.x + box.width, box.y + box.height) == ink
    out = decode(ds).frames[0]
    inside = np.zeros(out.shape[:2], dtype=bool)
    inside[y0:y1, x0:x1] = True
    assert (out[inside] == 0).all() and np.array_equal(out[~inside], rgb[~inside])


def test_glyph_tops_cut_by_the_detector_box_are_taken_in(testdata: Path) -> None:
    """A box cutting the top rows also cuts the right arm of the "y": whole glyphs come back."""
    img = _anatomy(testdata)
    ink = _draw(img, "gypsy", (40, 100), 14, (255, 255, 255))
    fit = text_extent(img, TextRegion(ink[0] - 4, ink[1] + 2, ink[2] + 4, ink[3] + 4))
    assert fit.box[1] > ink[1]
    assert extend_along_line(img, fit) == ink


def test_same_colour_region_below_a_cut_line_is_not_taken_in(testdata: Path) -> None:
    """Only glyph-sized pieces mostly inside the box grow it, not a region touching it."""
    img = _anatomy(testdata)
    ink = _draw(img, "HARTWELL", (40, 100), 14, (255, 255, 255))
    img[ink[3] : ink[3] + 20, ink[0] + 12 : ink[0] + 40] = 255  # touches the letters' feet
    fit = text_extent(img, TextRegion(ink[0] - 4, ink[1] - 4, ink[2] + 4, ink[3] - 1))
    x0, y0, x1, y1 = extend_along_line(img, fit)
    assert (x0, y0, x1) == (ink[0], ink[1], ink[2]) and y1 <= ink[3]


def test_kept_number_running_into_unread_text_is_masked(testdata: Path) -> None:
    """The detector boxed only "62" (an allow-listed number) of "15/01/1962"."""
    from PIL import ImageFont

    img = _anatomy(testdata)[:, :, 0].copy()
    rgb = np.repeat(img[:, :, None], 3, axis=2)
    ink = _draw(rgb, "15/01/1962", (40, 100), 16, (255, 255, 255))
    font = ImageFont.load_default(size=16)
    start = 40 + int(ImageDraw.Draw(Image.new("L", (1, 1))).textlength("15/01/19", font=font))
    ds = image_dataset(rgb[:, :, 0].copy(), photometric="MONOCHROME2", modality="US")
    cleaner = OcrPixelCleaner(
        engine=FixedEngine([(start, ink[1] - 4, ink[2] + 4, ink[3] + 4)], text="62"),
        scan_rules=ScanRules(),
        layout_rules=LayoutRules(),
        ink_key=False,
    )
    (box,) = cleaner.clean(ds, []).boxes
    assert box.reason == "ocr:line-followed-unread"
    assert box.x <= ink[0] and box.x + box.width >= ink[2]


def test_second_colour_on_a_lower_baseline_keeps_its_rows(testdata: Path) -> None:
    """A cyan name and a grey date on one detector line, the date's baseline two rows lower."""
    img = _anatomy(testdata)
    img[:] = 0
    first = _draw(img, "Hartwell 1962", (10, 40), 14, (0, 200, 255))
    date = _draw(img, "15/01/1962", (first[2] + 12, 42), 14, (150, 150, 150))
    assert date[3] == first[3] + 2
    fit = text_extent(img, TextRegion(4, first[1] - 6, date[2] + 6, first[3] + 6))
    x0, y0, x1, y1 = fit.box
    assert fit.exact
    assert x0 <= first[0] and x1 >= date[2] and y0 <= first[1] and y1 >= date[3]
    assert y1 <= date[3] + 1  # no more than a halo below the lower text


def test_one_patch_of_another_colour_does_not_move_the_rows(testdata: Path) -> None:
    """A flat patch (one piece) of a second colour a little lower is not a second text line."""
    img = _anatomy(testdata)
    img[:] = 0
    first = _draw(img, "Hartwell 1962", (10, 40), 14, (255, 255, 255))
    img[first[1] + 2 : first[3] + 2, first[2] + 10 : first[2] + 18] = (150, 150, 150)
    fit = text_extent(img, TextRegion(4, first[1] - 6, first[2] + 24, first[3] + 6))
    assert fit.exact
    assert fit.box[1] >= first[1] - 1 and fit.box[3] <= first[3] + 1
