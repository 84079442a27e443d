"""Text the detector misses on the windowed picture, found by its exact stored value (inkkey.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset

from pixels._support import image_dataset
from trialpacs.deid.pixels import LayoutRules, OcrPixelCleaner, ScanRules, default_cleaner
from trialpacs.deid.pixels.decode import decode
from trialpacs.deid.pixels.inkkey import (
    InkLine,
    complete_in_stored,
    find_ink_lines,
    key_picture,
    stored_key,
)
from trialpacs.deid.pixels.ocr import TextRegion


def _ink(shape: tuple[int, int], text: str, xy: tuple[int, int], size: int) -> NDArray[np.bool_]:
    img = Image.new("L", (shape[1], shape[0]), 0)
    ImageDraw.Draw(img).text(xy, text, fill=255, font=ImageFont.load_default(size=size))
    return np.asarray(img) > 96


def _bbox(m: NDArray[np.bool_]) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(m)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _covered(boxes: list, shape: tuple[int, ...]) -> NDArray[np.bool_]:
    m = np.zeros(shape[:2], dtype=bool)
    for b in boxes:
        m[b.y : b.y + b.height, b.x : b.x + b.width] = True
    return m


def _ct_rgb(testdata: Path) -> NDArray[np.uint8]:
    """A CT slice as an 8-bit RGB secondary capture (grey body, black air around it)."""
    frame = decode(pydicom.dcmread(testdata / "ct" / "CT1_UNC.dcm")).frames[0].astype(float)
    lo, hi = np.percentile(frame, 1), frame.max()
    g = np.clip((frame - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8)
    return np.stack([g, g, (g * 0.9).astype(np.uint8)], axis=-1)


def test_grey_text_across_a_bright_dark_edge_is_masked(testdata: Path) -> None:
    """Grey text darker than the body on one half and lighter than the air on the other.

    The detector finds nothing on the windowed picture here; the line is
    found by its exact value and read on the key picture.
    """
    rgb = _ct_rgb(testdata)
    ink = _ink(rgb.shape[:2], "15/01/1962", (5, 100), 16)
    x0, y0, x1, y1 = _bbox(ink)
    under = rgb[y0:y1, x0:x1, 0][~ink[y0:y1, x0:x1]]
    assert under.max() > 170 and under.min() < 10  # it crosses the body's edge
    rgb[ink] = (150, 150, 150)
    ds = image_dataset(rgb, photometric="RGB", modality="US")
    report = default_cleaner().clean(ds, [])
    masked = _covered(report.boxes, rgb.shape)
    assert masked[y0:y1, x0:x1].all()
    assert any("ink-key" in b.reason for b in report.boxes)
    # Tight (ink + a pixel), and everything else bit-identical.
    assert masked.sum() <= (x1 - x0 + 2) * (y1 - y0 + 2)
    out = decode(ds).frames[0]
    assert np.array_equal(out[~masked], rgb[~masked])


def test_grey_text_as_grey_as_the_tissue_is_masked(testdata: Path) -> None:
    """16-bit CT: text drawn at a soft-tissue value is invisible in the full-range window."""
    ds = pydicom.dcmread(testdata / "ct" / "CT2_UNC.dcm")
    frame = decode(ds).frames[0]
    value = int(np.median(frame[300:340, 200:300]))  # soft tissue under the text
    ink = _ink(frame.shape, "MRN 00456789", (200, 310), 16)
    planted = frame.copy()
    planted[ink] = value
    ds.PixelData = planted.astype("<i2").tobytes()
    ds.Modality = "OT"
    report = default_cleaner().clean(ds, ["00456789"])
    x0, y0, x1, y1 = _bbox(ink)
    assert _covered(report.boxes, frame.shape)[y0:y1, x0:x1].all()
    assert any("ink-key" in b.reason for b in report.boxes)


def test_lines_are_found_by_their_exact_value(testdata: Path) -> None:
    frame = decode(pydicom.dcmread(testdata / "mr-brain-series" / "brain_007.dcm")).frames[0]
    grey = int(frame.min()) + int(0.6 * (int(frame.max()) - int(frame.min())))
    ink = _ink(frame.shape, "Exam 2024-01-17", (40, 120), 10)
    planted = frame.copy()
    planted[ink] = grey
    (line,) = find_ink_lines(planted, np.zeros(frame.shape, dtype=bool))
    x0, y0, x1, y1 = _bbox(ink)
    assert line.value == grey
    assert line.box[0] <= x0 + 12 and line.box[2] >= x1 - 12
    assert line.box[1] <= y0 + 2 and line.box[3] >= y1 - 2
    # The key picture shows exactly the text's value, black on white.
    picture, (ox, oy) = key_picture(planted, line)
    assert set(np.unique(picture).tolist()) == {0, 255}
    inside = picture[y0 - oy : y1 - oy, x0 - ox : x1 - ox, 0] == 0
    assert inside.sum() == ink[y0:y1, x0:x1].sum()


def test_found_text_is_not_looked_at_again(testdata: Path) -> None:
    frame = decode(pydicom.dcmread(testdata / "mr-brain-series" / "brain_007.dcm")).frames[0]
    grey = int(frame.min()) + int(0.6 * (int(frame.max()) - int(frame.min())))
    ink = _ink(frame.shape, "Exam 2024-01-17", (40, 120), 10)
    planted = frame.copy()
    planted[ink] = grey
    x0, y0, x1, y1 = _bbox(ink)
    covered = np.zeros(frame.shape, dtype=bool)
    covered[y0 - 2 : y1 + 2, x0 - 2 : x1 + 2] = True
    assert find_ink_lines(planted, covered) == []


def test_text_free_images_yield_no_lines(testdata: Path) -> None:
    for path in [
        "ct/CT1_UNC.dcm",
        "ct/CT2_UNC.dcm",
        "mr-brain/MR4_UNC.dcm",
        "mr-knee/MR3_UNC.dcm",
        "mr-prostate-adc/000005.dcm",
        "mr-brain-series/brain_014.dcm",
        "nm/NM1_UNC.dcm",
    ]:
        frame = decode(pydicom.dcmread(testdata / path)).frames[0]
        assert find_ink_lines(frame, np.zeros(frame.shape[:2], dtype=bool)) == [], path


class _KeyOnlyEngine:
    """Finds nothing on the windowed picture; on a key picture, answers ``on_key``."""

    name = "key-only"

    def __init__(self, on_key: bool) -> None:
        self.on_key = on_key
        self.key_pictures = 0

    def detect(self, image: NDArray[np.uint8]) -> list[TextRegion]:
        if set(np.unique(image).tolist()) <= {0, 255}:
            self.key_pictures += 1
            if self.on_key:
                ys, xs = np.nonzero(image[:, :, 0] == 0)
                return [
                    TextRegion(
                        int(xs.min()) - 4, int(ys.min()) - 4, int(xs.max()) + 5, int(ys.max()) + 5
                    )
                ]
        return []

    def recognize(self, image: NDArray[np.uint8], regions: list[TextRegion]) -> list[TextRegion]:
        text = "Exam 2024-01-17"
        return [TextRegion(r.x0, r.y0, r.x1, r.y1, r.score, text, 0.99) for r in regions]


def _grey_line_dataset(testdata: Path) -> tuple[Dataset, tuple[int, int, int, int]]:
    frame = decode(pydicom.dcmread(testdata / "mr-brain-series" / "brain_007.dcm")).frames[0]
    grey = int(frame.min()) + int(0.6 * (int(frame.max()) - int(frame.min())))
    ink = _ink(frame.shape, "Exam 2024-01-17", (40, 120), 10)
    planted = frame.copy()
    planted[ink] = grey
    return image_dataset(planted, photometric="MONOCHROME2", modality="US"), _bbox(ink)


def test_nothing_is_masked_without_the_detector(testdata: Path) -> None:
    ds, _ = _grey_line_dataset(testdata)
    before = ds.PixelData
    engine = _KeyOnlyEngine(on_key=False)
    cleaner = OcrPixelCleaner(engine=engine, scan_rules=ScanRules(), layout_rules=LayoutRules())
    report = cleaner.clean(ds, [])
    assert engine.key_pictures == 1
    assert report.boxes == [] and ds.PixelData == before


def test_key_found_line_is_masked_tightly(testdata: Path) -> None:
    ds, (x0, y0, x1, y1) = _grey_line_dataset(testdata)
    cleaner = OcrPixelCleaner(
        engine=_KeyOnlyEngine(on_key=True), scan_rules=ScanRules(), layout_rules=LayoutRules()
    )
    (box,) = cleaner.clean(ds, []).boxes
    assert box.reason.startswith("ocr:ink-key:")
    # The ink plus one pixel for anti-aliasing, no more.
    assert (box.x, box.y, box.x + box.width, box.y + box.height) == (x0 - 1, y0 - 1, x1 + 1, y1 + 1)


def test_ink_key_can_be_switched_off(testdata: Path) -> None:
    ds, _ = _grey_line_dataset(testdata)
    engine = _KeyOnlyEngine(on_key=True)
    cleaner = OcrPixelCleaner(
        engine=engine, scan_rules=ScanRules(), layout_rules=LayoutRules(), ink_key=False
    )
    assert cleaner.clean(ds, []).boxes == [] and engine.key_pictures == 0


def test_text_at_the_top_value_is_a_candidate_the_bottom_value_is_not(testdata: Path) -> None:
    """White text over bright anatomy counts; the lowest value is where clipped maps are flat."""
    frame = decode(pydicom.dcmread(testdata / "mr-brain-series" / "brain_007.dcm")).frames[0]
    ink = _ink(frame.shape, "Jane Q Hartwell", (40, 120), 10)
    bright = frame.copy()
    bright[ink] = frame.max()
    (line,) = find_ink_lines(bright, np.zeros(frame.shape, dtype=bool))
    assert line.value == int(frame.max())
    dark = frame.copy()
    dark[ink] = frame.min()
    assert find_ink_lines(dark, np.zeros(frame.shape, dtype=bool)) == []


def _mr16(testdata: Path) -> NDArray[np.int64]:
    return (
        decode(pydicom.dcmread(testdata / "mr-brain-series" / "brain_007.dcm"))
        .frames[0]
        .astype(np.int64)
    )


def test_glyph_column_the_view_lost_is_taken_in_on_stored_values(testdata: Path) -> None:
    """White text over anatomy: a box a column short of the first glyph grows over it, no more."""
    frame = _mr16(testdata)
    top = int(frame.max()) + 40
    ink = _ink(frame.shape, "Jane Q Hartwell", (60, 110), 10)
    frame[ink] = top
    x0, y0, x1, y1 = _bbox(ink)
    assert complete_in_stored(frame, (x0 + 1, y0, x1, y1)) == (x0, y0, x1, y1)
    # Not up or down: white anatomy can touch white text there.
    assert complete_in_stored(frame, (x0, y0, x1, y1 - 1)) == (x0, y0, x1, y1 - 1)


def test_stored_completion_leaves_background_and_banner(testdata: Path) -> None:
    """Dark text on a banner: neither the banner nor patches of the text's (lowest) value."""
    frame = _mr16(testdata)
    ink = _ink(frame.shape, "DOB 1962-01-15", (50, 106), 14)
    box = _bbox(ink)
    frame[box[1] - 3 : box[3] + 3, box[0] - 4 : box[2] + 4] = int(frame.max())
    frame[ink] = 0
    # Ragged patches of the lowest value beside the banner (clipped anatomy
    # on an ADC map), glyph-sized and on the line's rows.
    for x in range(box[2] + 7, box[2] + 80, 9):
        frame[box[1] + 1 : box[3] - 1, x : x + 3] = 0
    assert complete_in_stored(frame, box) == box
    # Bright text on black air: the air around it is no glyph either.
    air = np.zeros((200, 300), dtype=np.int64)
    ink = _ink(air.shape, "MRN 00456789", (20, 80), 14)
    air[ink] = 4095
    box = _bbox(ink)
    assert complete_in_stored(air, box) == box


def test_line_is_followed_on_stored_values_past_a_bright_edge(testdata: Path) -> None:
    """The view lost the line's end over near-white anatomy; the stored values still hold it.

    A bar of the text's value runs under the line's end (an image edge at
    the top value): it is no glyph and does not stop the line.
    """
    frame = _mr16(testdata)
    top = int(frame.max()) + 40
    ink = _ink(frame.shape, "HARTWELL^JANE^Q", (30, 110), 10)
    x0, y0, x1, y1 = _bbox(ink)
    frame[y1 + 2 : y1 + 5, x0 + 40 : x1 + 60] = top
    frame[ink] = top
    half = (x0 - 2, y0 - 3, x0 + 45, y1 + 3)  # a coarse box over the first half
    gx0, gy0, gx1, gy1 = complete_in_stored(frame, half)
    assert gx0 <= x0 and gx1 >= x1 and gy0 <= y0 and gy1 >= y1
    assert gx1 <= x1 + 1 and gy1 <= y1 + 3  # neither the bar nor its length


def test_line_end_the_box_leaves_slack_after_is_not_followed(testdata: Path) -> None:
    """Slack after the ink: the detector saw the line end, the next word is not taken."""
    frame = _mr16(testdata)
    top = int(frame.max()) + 40
    first = _ink(frame.shape, "MRN 00456789", (30, 110), 14)
    fx0, fy0, fx1, fy1 = _bbox(first)
    other = _ink(frame.shape, "Hartwell", (fx1 + 18, 110), 14)
    frame[first | other] = top
    box = (fx0, fy0, fx1 + 8, fy1)
    assert complete_in_stored(frame, box)[2] == fx1 + 8


def test_two_letters_next_to_found_text_are_a_line(testdata: Path) -> None:
    """ "ID" (narrower than a line needs) before a number the detector boxed on its own."""
    frame = decode(pydicom.dcmread(testdata / "mr-knee" / "MR3_UNC.dcm")).frames[0]
    grey = int(frame.min()) + int(0.6 * (int(frame.max()) - int(frame.min())))
    ink = _ink(frame.shape, "ID", (300, 60), 28)
    number = _ink(frame.shape, "7781234", (340, 60), 28)
    planted = frame.copy()
    planted[ink | number] = grey
    x0, y0, x1, y1 = _bbox(ink)
    assert x1 - x0 < 1.5 * (y1 - y0)
    nx0, ny0, nx1, ny1 = _bbox(number)
    alone = frame.copy()
    alone[ink] = grey
    nothing = np.zeros(frame.shape, dtype=bool)

    def has_id(lines: list[InkLine]) -> bool:
        return any(line.box[0] <= x0 + 2 and line.box[2] >= x1 - 2 for line in lines)

    assert not has_id(find_ink_lines(alone, nothing))  # two letters alone: too short
    covered = nothing.copy()
    covered[ny0 - 2 : ny1 + 2, nx0 - 2 : nx1 + 2] = True
    assert has_id(find_ink_lines(planted, covered))


def test_small_white_text_over_smooth_anatomy_is_a_candidate(testdata: Path) -> None:
    """8-bit anatomy repeats its values, so small white text is never a tile's most frequent."""
    rgb = _ct_rgb(testdata)
    ink = _ink(rgb.shape[:2], "ID7781234", (200, 250), 8)
    x0, y0, x1, y1 = _bbox(ink)
    assert rgb[y0:y1, x0:x1].min() > 60  # over the body
    rgb[ink] = (255, 255, 255)
    lines = find_ink_lines(rgb, np.zeros(rgb.shape[:2], dtype=bool))
    top = int(stored_key(np.full((1, 1, 3), 255, dtype=np.uint8))[0, 0])
    assert any(
        line.value == top and line.box[0] <= x0 + 8 and line.box[2] >= x1 - 8 for line in lines
    )


def test_lowest_value_ringed_by_a_banner_is_a_candidate(testdata: Path) -> None:
    """Small dark text on a light banner over anatomy: the lowest value, but inside one value."""
    frame = decode(pydicom.dcmread(testdata / "ct" / "CT1_UNC.dcm")).frames[0].astype(np.int64)
    ink = _ink(frame.shape, "Jan 15, 1962", (60, 250), 8)
    x0, y0, x1, y1 = _bbox(ink)
    frame[y0 - 3 : y1 + 3, x0 - 4 : x1 + 4] = int(frame.max())
    frame[ink] = int(frame.min())
    lines = find_ink_lines(frame, np.zeros(frame.shape, dtype=bool))
    assert any(
        line.value == int(frame.min()) and line.box[0] <= x0 + 8 and line.box[2] >= x1 - 8
        for line in lines
    )


def test_text_at_the_tissue_value_is_judged_on_its_own_rows(testdata: Path) -> None:
    """Tissue of the text's value joins its pieces: the peak test looks at the text's rows."""
    frame = decode(pydicom.dcmread(testdata / "ct" / "CT2_UNC.dcm")).frames[0].astype(np.int64)
    value = 40  # soft tissue (HU), the value of many pixels around the text
    ink = _ink(frame.shape, "MRN: 00456789", (156, 228), 18)
    x0, y0, x1, y1 = _bbox(ink)
    assert int((frame[y0 - 8 : y1 + 8, x0:x1] == value).sum()) > 100
    frame[ink] = value
    lines = find_ink_lines(frame, np.zeros(frame.shape, dtype=bool))
    assert any(
        line.value == value and line.box[0] <= x0 + 8 and line.box[2] >= x1 - 8 for line in lines
    )


def test_white_text_does_not_crowd_a_grey_line_off_the_candidates(testdata: Path) -> None:
    """The top value is a candidate in many tiles; a grey line in a few must still be looked at.

    With room for two ranked values, the white lines (more tiles) took one
    and a tissue value the other: the grey line was never searched.
    """
    rgb = _ct_rgb(testdata)
    white = np.zeros(rgb.shape[:2], dtype=bool)
    for row in (40, 140, 240, 340, 440):
        white |= _ink(rgb.shape[:2], "HARTWELL^JANE^Q 15/01/1962", (20, row), 14)
    rgb[white] = (255, 255, 255)
    ink = _ink(rgb.shape[:2], "ID 7781234", (300, 200), 14)
    x0, _, x1, _ = _bbox(ink)
    rgb[ink] = (150, 150, 150)
    lines = find_ink_lines(rgb, np.zeros(rgb.shape[:2], dtype=bool), max_values=2)
    grey = int(stored_key(np.full((1, 1, 3), 150, dtype=np.uint8))[0, 0])
    top = int(stored_key(np.full((1, 1, 3), 255, dtype=np.uint8))[0, 0])
    assert any(line.value == top for line in lines)
    assert any(
        line.value == grey and line.box[0] <= x0 + 8 and line.box[2] >= x1 - 8 for line in lines
    )


def test_key_found_line_at_the_tissue_value_is_masked_to_its_glyphs(testdata: Path) -> None:
    """Tissue pixels of the text's value around it stay out of the box.

    The detector box, its fit, the line following and the stored-value
    completion all took them in: a 13 px line was masked 27 px tall and
    twice as wide.
    """
    ds = pydicom.dcmread(testdata / "ct" / "CT2_UNC.dcm")
    frame = decode(ds).frames[0].astype(np.int64)
    value = 40  # soft tissue (HU)
    ink = _ink(frame.shape, "MRN: 00456789", (156, 228), 18)
    x0, y0, x1, y1 = _bbox(ink)
    assert int((frame[y0 - 8 : y1 + 8, x0 - 40 : x1 + 40] == value).sum()) > 100
    frame[ink] = value
    ds.PixelData = frame.astype("<i2").tobytes()
    ds.Modality = "OT"
    report = default_cleaner().clean(ds, ["00456789"])
    masked = _covered(report.boxes, frame.shape)
    assert masked[y0:y1, x0:x1].all()
    assert masked.sum() <= (x1 - x0 + 6) * (y1 - y0 + 6)
