"""Paint boxes over stored pixel values.

A box is filled with one uniform value so that nothing of the text survives
(no blur that could be undone, no partial strokes). The value is the one that
*displays* as black for the photometric interpretation, which is what readers
expect from a redaction and keeps the box out of any window.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset

from .decode import DecodedPixels
from .ocr import TextRegion

__all__ = ["ALL_FRAMES", "Box", "apply_boxes", "mask_value", "pad_box", "tighten_to_ink"]

ALL_FRAMES = -1
"""Frame index meaning "this box is masked on every frame" (layouts, cine unions)."""


@dataclass(frozen=True, order=True)
class Box:
    """A rectangle in stored pixel coordinates: columns [x, x+width), rows [y, y+height)."""

    x: int
    y: int
    width: int
    height: int

    @property
    def x1(self) -> int:
        return self.x + self.width

    @property
    def y1(self) -> int:
        return self.y + self.height

    def clip(self, rows: int, cols: int) -> Box | None:
        x0, y0 = max(0, self.x), max(0, self.y)
        x1, y1 = min(cols, self.x1), min(rows, self.y1)
        if x1 <= x0 or y1 <= y0:
            return None
        return Box(x0, y0, x1 - x0, y1 - y0)

    def overlaps(self, other: Box, margin: int = 0) -> bool:
        return not (
            self.x1 + margin <= other.x
            or other.x1 + margin <= self.x
            or self.y1 + margin <= other.y
            or other.y1 + margin <= self.y
        )

    def union(self, other: Box) -> Box:
        x0, y0 = min(self.x, other.x), min(self.y, other.y)
        x1, y1 = max(self.x1, other.x1), max(self.y1, other.y1)
        return Box(x0, y0, x1 - x0, y1 - y0)


def pad_box(
    x0: float,
    y0: float,
    x1: float,
    y1: float,
    *,
    scale: float,
    pad: int,
    pad_fraction: float,
    rows: int,
    cols: int,
) -> Box | None:
    """Map a box found on an OCR view back to stored pixels and grow it.

    Detectors draw the box around the ink with little slack; anti-aliased
    stroke ends and descenders fall just outside. The padding grows with the
    text height so that large text gets a proportionally larger margin.
    """
    sx0, sy0, sx1, sy1 = x0 / scale, y0 / scale, x1 / scale, y1 / scale
    extra = pad + pad_fraction * (sy1 - sy0)
    bx0 = int(np.floor(sx0 - extra))
    by0 = int(np.floor(sy0 - extra))
    bx1 = int(np.ceil(sx1 + extra))
    by1 = int(np.ceil(sy1 + extra))
    return Box(bx0, by0, bx1 - bx0, by1 - by0).clip(rows, cols)


def tighten_to_ink(
    image: NDArray[np.uint8], region: TextRegion, min_contrast: float = 24.0
) -> tuple[int, int, int, int]:
    """Shrink a detector box to the rows and columns that hold ink.

    The DB detector grows each box by about a third of the line height on
    every side (its "unclip" step), so masking the raw box blanks a band of
    anatomy around every line. Ink is whatever differs clearly from the
    box's border (its local background), in either direction and in any
    channel. Only empty margins are trimmed: anatomy inside the box counts
    as ink, which errs towards masking more. Boxes with no clear ink are
    left as they are.
    """
    x0, y0, x1, y1 = region.x0, region.y0, region.x1, region.y1
    crop = image[y0:y1, x0:x1].astype(np.int16)
    if crop.shape[0] < 4 or crop.shape[1] < 4:
        return x0, y0, x1, y1
    ring = np.concatenate([crop[0], crop[-1], crop[:, 0], crop[:, -1]], axis=0)
    background = np.median(ring, axis=0)
    deviation = np.abs(crop - background).max(axis=-1)
    contrast = float(np.percentile(deviation, 99))
    if contrast < min_contrast:
        return x0, y0, x1, y1
    # Columns: anything clearly unlike the background is kept, so a grey
    # label next to a white value on the same line is never cut off.
    ink = deviation >= max(min_contrast / 2, 0.25 * contrast)
    cols = np.nonzero(ink.any(axis=0))[0]
    # Rows: burned-in text is drawn in one colour; rows holding pixels of
    # that colour are the line, even over anatomy that differs from the
    # border as much as the text does.
    flat = crop.reshape(-1, crop.shape[-1])
    colour = flat[int(np.argmax(deviation.reshape(-1) >= contrast))]
    near = np.abs(crop - colour).max(axis=-1) <= 0.2 * contrast
    rows = np.nonzero((near & ink).sum(axis=1) >= 2)[0]
    if len(rows) == 0 or len(cols) == 0:
        return x0, y0, x1, y1
    return x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1


def _darkest_palette_index(ds: Dataset, frame: NDArray[np.generic]) -> int:
    from pydicom.pixels import apply_color_lut

    lo = int(frame.min())
    hi = int(frame.max())
    candidates = np.arange(lo, hi + 1, dtype=frame.dtype)
    rgb = np.asarray(apply_color_lut(candidates, ds)).astype(np.float64)
    luminance = rgb @ np.array([0.299, 0.587, 0.114])
    return int(candidates[int(np.argmin(luminance))])


def mask_value(
    decoded: DecodedPixels, frame: NDArray[np.generic], ds: Dataset | None = None
) -> NDArray[np.generic]:
    """The fill value (scalar or per-sample) for one frame of ``decoded``."""
    dtype = frame.dtype
    p = decoded.photometric
    if p == "MONOCHROME2":
        return np.array(frame.min(), dtype=dtype)
    if p == "MONOCHROME1":
        return np.array(frame.max(), dtype=dtype)
    if p == "PALETTE COLOR":
        if ds is None:
            return np.array(frame.min(), dtype=dtype)
        return np.array(_darkest_palette_index(ds, frame), dtype=dtype)
    if p.startswith("YBR"):
        mid = 1 << (decoded.bits_stored - 1)
        return np.array([0, mid, mid], dtype=dtype)
    return np.zeros(3, dtype=dtype)  # RGB


def apply_boxes(
    decoded: DecodedPixels,
    boxes: Iterable[tuple[int, Box]],
    ds: Dataset | None = None,
) -> bool:
    """Fill every (frame, box) in place; ``ALL_FRAMES`` fills the box on every frame.

    Returns whether any stored value changed. The fill value is computed per
    frame before any box is painted so that it does not depend on box order.
    """
    frames = decoded.frames
    n = decoded.n_frames
    per_frame: dict[int, list[Box]] = {}
    for f, box in boxes:
        targets = range(n) if f == ALL_FRAMES else [f]
        for t in targets:
            if 0 <= t < n:
                per_frame.setdefault(t, []).append(box)
    changed = False
    for f, frame_boxes in per_frame.items():
        frame = frames[f]
        value = mask_value(decoded, frame, ds)
        for b in frame_boxes:
            region = frame[b.y : b.y1, b.x : b.x1]
            if not changed and not np.all(region == value):
                changed = True
            region[...] = value
    return changed
