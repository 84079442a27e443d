"""Paint boxes over stored pixel values.

A box is filled with one uniform value so that nothing of the text survives
(no blur that could be undone, no partial strokes). The value is the one that
*displays* as black for the photometric interpretation, which is what readers
expect from a redaction and keeps the box out of any window.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset

from .decode import DecodedPixels
from .ocr import TextRegion

__all__ = [
    "ALL_FRAMES",
    "Box",
    "TextFit",
    "apply_boxes",
    "extend_along_line",
    "follow_stroke_ends",
    "mask_value",
    "pad_box",
    "text_extent",
    "tighten_to_ink",
]

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
    """Shrink a detector box to the rows and columns that hold ink (coarse fallback).

    The DB detector grows each box by about a third of the line height on
    every side (its "unclip" step), so masking the raw box blanks a band of
    anatomy around every line. Ink is whatever differs clearly from the
    box's border (its local background), in either direction and in any
    channel. Only empty margins are trimmed: anatomy inside the box counts
    as ink, which errs towards masking more. Boxes with no clear ink are
    left as they are. :func:`text_extent` is the precise version.
    """
    x0, y0, x1, y1 = region.x0, region.y0, region.x1, region.y1
    crop = image[y0:y1, x0:x1].astype(np.int16)
    if crop.shape[0] < 4 or crop.shape[1] < 4:
        return x0, y0, x1, y1
    background = np.median(_ring(crop), axis=0)
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


def _ring(crop: NDArray[np.int16]) -> NDArray[np.int16]:
    return np.concatenate([crop[0], crop[-1], crop[:, 0], crop[:, -1]], axis=0)


def _colour_modes(
    crop: NDArray[np.int16], candidates: NDArray[np.bool_]
) -> list[NDArray[np.int16]]:
    """The uniform colours among the ``candidates`` pixels, most frequent first.

    Burned-in text is drawn in one colour per label (two for "Name: VALUE"
    lines); anatomy spreads over many values, so its most frequent exact
    colour holds few pixels.
    """
    pixels = crop[candidates].astype(np.int64)
    if len(pixels) == 0:
        return []
    packed = (pixels[:, 0] << 16) | (pixels[:, 1] << 8) | pixels[:, 2]
    values, counts = np.unique(packed, return_counts=True)
    order = np.argsort(counts, kind="stable")[::-1]
    top = int(counts[order[0]])
    modes: list[NDArray[np.int16]] = []
    for i in order[:12]:
        if counts[i] < max(4, 0.1 * top) or len(modes) >= 4:
            break
        v = int(values[i])
        colour = np.array([(v >> 16) & 255, (v >> 8) & 255, v & 255], dtype=np.int16)
        if any(int(np.abs(colour - m).max()) <= 12 for m in modes):
            continue
        # A drawn colour is a peak: many pixels of exactly this value and
        # few of the values around it. Smooth anatomy has as many pixels of
        # the neighbouring values.
        distance = np.abs(crop - colour).max(axis=-1)
        around = int(((distance >= 2) & (distance <= 8)).sum())
        if counts[i] < 0.5 * around:
            continue
        modes.append(colour)
    return modes


def _runs(indices: NDArray[np.intp], max_gap: int) -> list[tuple[int, int]]:
    """Group sorted indices into [start, end) runs split at gaps wider than ``max_gap``."""
    runs: list[tuple[int, int]] = []
    start = prev = int(indices[0])
    for i in indices[1:]:
        i = int(i)
        if i - prev - 1 > max_gap:
            runs.append((start, prev + 1))
            start = i
        prev = i
    runs.append((start, prev + 1))
    return runs


def _is_panel(members: NDArray[np.bool_]) -> tuple[int, int, int, int] | None:
    """The bbox of ``members`` if they form a banner behind the text.

    A banner is a filled rectangle reaching its own edges that spans the
    detector box's line: most of its width, across its middle row. A dark
    region of the image beside part of the line is not one.
    """
    ys, xs = np.nonzero(members)
    if len(xs) < 16:
        return None
    by0, by1, bx0, bx1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    h, w = members.shape
    if by1 - by0 < 4 or bx1 - bx0 < max(4, 0.8 * w) or not by0 <= h // 2 < by1:
        return None
    sub = members[by0:by1, bx0:bx1]
    edge = np.concatenate([sub[0], sub[-1], sub[:, 0], sub[:, -1]])
    if edge.mean() >= 0.85 and sub.mean() >= 0.5:
        return bx0, by0, bx1, by1
    return None


def _drop_edge_regions(ink: NDArray[np.bool_], *, top: bool, bottom: bool) -> NDArray[np.bool_]:
    """Remove ink regions touching the box's top or bottom edge (when that is not the image's).

    The detector's box leaves room above and below the line, so a region of
    the text's colour reaching those edges is background around a banner or
    anatomy, not a stroke. The sides are kept: a line cut by the detector
    runs into them.
    """
    n, labels = cv2.connectedComponents(ink.astype(np.uint8), connectivity=8)
    if n <= 1:
        return ink
    edge: set[int] = set()
    if top:
        edge |= {int(v) for v in np.unique(labels[0])}
    if bottom:
        edge |= {int(v) for v in np.unique(labels[-1])}
    edge.discard(0)
    if not edge:
        return ink
    kept = ink & ~np.isin(labels, sorted(edge))
    return kept if kept.any() else ink


def _neighbours(mask: NDArray[np.bool_]) -> NDArray[np.int32]:
    """How many of its 8 neighbours are set, for every pixel."""
    m = mask.astype(np.float32)
    total = cv2.filter2D(m, -1, np.ones((3, 3), np.float32), borderType=cv2.BORDER_CONSTANT)
    return np.rint(total - m).astype(np.int32)


def _pieces_within(layer: NDArray[np.bool_], ry0: int, ry1: int) -> NDArray[np.bool_]:
    """Connected pieces of ``layer`` lying within rows [ry0-1, ry1+1) and off the box's edges."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(layer.astype(np.uint8), connectivity=8)
    h, w = layer.shape
    keep = np.zeros(n, dtype=bool)
    for i in range(1, n):
        x, y, bw, bh = (int(v) for v in stats[i, :4])
        inside = y >= ry0 - 1 and y + bh <= ry1 + 1
        off_edges = x > 0 and y > 0 and x + bw < w and y + bh < h
        keep[i] = inside and off_edges
    return keep[labels]


def _line_rows(layer: NDArray[np.bool_], gap: int) -> tuple[int, int] | None:
    """The densest run of rows holding connected pixels of ``layer``, with stroke tips next to it.

    One line of text in one colour; anatomy that happens to share the exact
    value is scattered and holds few connected pixels.
    """
    strokes = layer & (_neighbours(layer) >= 2)
    if not strokes.any():
        strokes = layer
    rows_with = np.nonzero(strokes.any(axis=1))[0]
    if len(rows_with) == 0:
        return None
    ry0, ry1 = max(_runs(rows_with, gap), key=lambda r: int(strokes[r[0] : r[1]].sum()))
    for _ in range(2):
        if ry0 > 0 and layer[ry0 - 1].any():
            ry0 -= 1
        if ry1 < layer.shape[0] and layer[ry1].any():
            ry1 += 1
    return ry0, ry1


def _halo(
    crop: NDArray[np.int16], ink: NDArray[np.bool_], box: list[int], colour: NDArray[np.int16]
) -> list[int]:
    """Grow ``box`` by one pixel on each side where anti-aliased edges of the ink lie outside.

    A halo pixel sits next to ink and is a blend of the text colour and its
    own local background (the pixel two steps further out): clearly closer
    to the text colour than that background is. Anti-aliased text shows this
    along most of the edge; anatomy next to the text only here and there.
    """
    x0, y0, x1, y1 = box
    h, w = ink.shape
    out = list(box)

    def blended(a: NDArray[np.int16], b: NDArray[np.int16], touching: NDArray[np.bool_]) -> bool:
        if not touching.any():
            return False
        to_text_a = np.abs(a - colour).max(axis=-1)
        to_text_b = np.abs(b - colour).max(axis=-1)
        strong = to_text_b >= 24
        halo = strong & (to_text_a <= 0.8 * to_text_b)
        return bool(halo[touching].mean() >= 0.5)

    if x0 >= 2 and blended(crop[y0:y1, x0 - 1], crop[y0:y1, x0 - 2], ink[y0:y1, x0]):
        out[0] = x0 - 1
    if x1 + 1 < w and blended(crop[y0:y1, x1], crop[y0:y1, x1 + 1], ink[y0:y1, x1 - 1]):
        out[2] = x1 + 1
    if y0 >= 2 and blended(crop[y0 - 1, x0:x1], crop[y0 - 2, x0:x1], ink[y0, x0:x1]):
        out[1] = y0 - 1
    if y1 + 1 < h and blended(crop[y1, x0:x1], crop[y1 + 1, x0:x1], ink[y1 - 1, x0:x1]):
        out[3] = y1 + 1
    return out


@dataclass(frozen=True)
class TextFit:
    """Where the text of one detector box is: ``box`` (x0, y0, x1, y1) in view pixels.

    ``exact``: the box was fitted to text-colour pixels (no margin needed);
    ``colours``: the text colours found (RGB of the view).
    """

    box: tuple[int, int, int, int]
    exact: bool
    colours: tuple[tuple[int, int, int], ...] = ()
    region: tuple[int, int, int, int] = (0, 0, 0, 0)


def text_extent(
    image: NDArray[np.uint8],
    region: TextRegion,
    min_contrast: float = 24.0,
    _background: NDArray[np.floating] | None = None,
    _outer: tuple[int, int, int, int] = (0, 0, 0, 0),
) -> TextFit:
    """The bounding box of the text pixels inside a detector box, and whether it was found.

    Burned-in text is drawn in uniform colours. Inside the detector box the
    local background is the border's median; the text colours are the
    frequent exact colours among the pixels clearly unlike it (anatomy
    spreads over many values); a colour that fills a rectangle reaching its
    own edges is a banner, and the text is then looked for inside it with the
    banner as background. The result is the bounding box of the text-colour
    pixels of the line (plus an anti-aliasing halo where there is one); it
    needs no further margin. When no text colour stands out, the coarse
    :func:`tighten_to_ink` box is returned with ``False``, and callers add a
    margin.
    """
    x0, y0, x1, y1 = region.x0, region.y0, region.x1, region.y1
    crop = image[y0:y1, x0:x1].astype(np.int16)
    coarse = tighten_to_ink(image, region, min_contrast)
    if crop.shape[0] < 4 or crop.shape[1] < 4:
        return TextFit(coarse, False)
    ring = _ring(crop)
    background = np.median(ring, axis=0) if _background is None else _background
    deviation = np.abs(crop - background).max(axis=-1)
    contrast = float(np.percentile(deviation, 99))
    if contrast < min_contrast:
        return TextFit(coarse, False)
    # Faint text over busy anatomy can differ from its surroundings less
    # than the anatomy does: every pixel unlike the border may hold a colour.
    candidates = deviation >= min_contrast / 3
    layers: list[NDArray[np.bool_]] = []
    colours: list[tuple[int, int, int]] = []
    for colour in _colour_modes(crop, candidates):
        distance = np.abs(crop - colour).max(axis=-1)
        strength = float(np.abs(colour - background).max())
        members = distance <= max(3.0, 0.12 * strength)
        if _background is None:
            panel = _is_panel(members)
            if panel is not None:
                px0, py0, px1, py1 = panel
                inner = TextRegion(x0 + px0, y0 + py0, x0 + px1, y0 + py1)
                return text_extent(
                    image, inner, min_contrast, colour.astype(np.float64), (x0, y0, x1, y1)
                )
        ring_share = float((np.abs(ring - colour).max(axis=-1) <= max(3.0, 0.12 * strength)).mean())
        if ring_share >= 0.25:
            continue  # the box border's own colour: background, not text
        layers.append(members & candidates)
        colours.append((int(colour[0]), int(colour[1]), int(colour[2])))
    if not layers:
        return TextFit(coarse, False)
    # One line: the densest run of rows holding connected pixels of the main
    # colour (anatomy that happens to share the exact value is scattered).
    main = layers[0]
    gap = max(2, crop.shape[0] // 4)
    main_rows = _line_rows(main, gap)
    if main_rows is None:
        return TextFit(coarse, False)
    ry0, ry1 = main_rows
    ink = np.zeros(main.shape, dtype=bool)
    ink[ry0:ry1] = main[ry0:ry1]
    # Other colours (a grey label before a white value) count where they
    # form glyph-sized pieces within the line's rows; a dark region of the
    # image reaching beyond the line or the box's edge is background.
    # A second text in another colour can sit on its own baseline ("62" in
    # cyan, then a grey serif date two rows lower): a colour whose own line
    # is about as tall as the main line, shifted by at most a sixth of its
    # height and made of at least three glyph pieces counts in its own rows.
    # (A flat patch of anatomy in some colour reaches further, is not
    # line-high or is one piece.)
    main_y0, main_y1 = ry0, ry1
    lh = main_y1 - main_y0
    shift = max(2, lh // 6)
    for layer in layers[1:]:
        ly0, ly1 = main_y0, main_y1
        own = _line_rows(layer, gap)
        if (
            own is not None
            and abs((own[1] - own[0]) - lh) <= max(2, lh // 5)
            and abs(own[0] - main_y0) <= shift
            and abs(own[1] - main_y1) <= shift
            and cv2.connectedComponents(
                _pieces_within(layer, own[0], own[1]).astype(np.uint8), connectivity=8
            )[0]
            > 3
        ):
            ly0, ly1 = min(main_y0, own[0]), max(main_y1, own[1])
        pieces = _pieces_within(layer, ly0, ly1)
        if pieces.any():
            ink |= pieces
            ys = np.nonzero(pieces.any(axis=1))[0]
            ry0, ry1 = min(ry0, max(ly0, int(ys[0]))), max(ry1, min(ly1, int(ys[-1]) + 1))
    line = ink[ry0:ry1]
    cols_with = np.nonzero(line.any(axis=0))[0]
    col_runs = _runs(cols_with, max(3, int(1.5 * (ry1 - ry0))))
    total = int(line.sum())
    kept = [r for r in col_runs if int(line[:, r[0] : r[1]].sum()) >= max(3, 0.02 * total)]
    if not kept:
        return TextFit(coarse, False)
    box = [kept[0][0], ry0, kept[-1][1], ry1]
    box = _halo(crop, ink, box, np.asarray(colours[0], dtype=np.int16))
    return TextFit(
        (x0 + box[0], y0 + box[1], x0 + box[2], y0 + box[3]),
        True,
        tuple(colours),
        (x0, y0, x1, y1) if _background is None else _outer,
    )


def extend_along_line(image: NDArray[np.uint8], fit: TextFit) -> tuple[int, int, int, int]:
    """Follow a fitted line left and right beyond its detector box.

    Detectors lose the ends of lines over anatomy and split long lines at
    wide gaps, leaving pieces unfound. The text continues in the same rows
    and colours: columns next to the box holding text-colour pixels inside
    the line's rows (and fewer just above and below it, which tells a line
    from a region of that colour) are taken in, across gaps up to one and a
    half line heights.
    """
    x0, y0, x1, y1 = fit.box
    if not fit.exact or not fit.colours:
        return fit.box
    rows, cols = image.shape[:2]
    h = y1 - y0
    # Rows just above and below the line: another line of the same colour
    # starts further away; a region of that colour touches the line.
    margin = max(2, h // 3)
    top, bottom = max(0, y0 - margin), min(rows, y1 + margin)
    strip = image[top:bottom].astype(np.int16)
    ink = np.zeros(strip.shape[:2], dtype=bool)
    # The main colour only: a second one may be a flat patch of anatomy.
    colour = np.asarray(fit.colours[0], dtype=np.int16)
    ink |= np.abs(strip - colour).max(axis=-1) <= 3
    # Strokes are connected; pixels of anatomy that happen to have the text's
    # exact value are scattered. Keep ink pixels with two ink neighbours.
    ink &= _neighbours(ink) >= 2
    inside = ink[y0 - top : y1 - top].sum(axis=0)
    outside = ink[: y0 - top].sum(axis=0) + ink[y1 - top :].sum(axis=0)
    line_col = (inside >= 1) & (outside * 2 < inside)
    max_gap = max(3, int(1.5 * h))

    def walk(start: int, step: int, stop: int) -> int:
        return walk_columns(line_col, start, step, stop, max_gap)

    # Only where the ink runs up to the detector box's side: where the
    # detector saw the line end, its slack lies between ink and box edge.
    reach = max(1, h // 4)
    new_x1 = walk(x1, 1, cols) + 1 if fit.region[2] - x1 <= reach else x1
    new_x0 = walk(x0 - 1, -1, -1) if x0 - fit.region[0] <= reach else x0
    # Likewise above and below: only where the ink runs into the detector
    # box's top or bottom row can the box have cut glyphs. Ink filling the box
    # from top to bottom is anatomy in the text's colour around the line
    # (the detector leaves room on both sides of what it sees as text).
    # Words taken in by following the line were not seen by the detector
    # at all: their descenders may reach below the rows of the rest.
    up = y0 <= fit.region[1]
    down = y1 >= fit.region[3]
    box = (min(x0, new_x0), y0, max(x1, new_x1), y1)
    followed = box[0] < x0 or box[2] > x1
    if (up and down) or (not up and not down and not followed):
        return box
    return follow_stroke_ends(
        image, box, colour, up=up, down=down, seen=(fit.region[0], fit.region[2])
    )


def walk_columns(
    line_col: NDArray[np.bool_], start: int, step: int, stop: int, max_gap: int
) -> int:
    """The last inked column reached from ``start`` without a gap over ``max_gap``.

    How far a text line runs on along its row band: letters and word gaps are
    crossed, a gap wider than about one and a half line heights ends it.
    """
    last = start - step
    x = start
    while x != stop and abs(x - last) - 1 <= max_gap:
        if line_col[x]:
            last = x
        x += step
    return last


def follow_stroke_ends(
    image: NDArray[np.generic],
    box: tuple[int, int, int, int],
    colour: NDArray[np.integer],
    *,
    up: bool = True,
    down: bool = True,
    seen: tuple[int, int] | None = None,
    tolerance: int = 3,
) -> tuple[int, int, int, int]:
    """Grow a fitted line's box over the parts of its glyphs that lie beyond it.

    The fit only sees inside the detector box; a detector box a row short
    cuts the tip of a descender ("J", "g", "y"), an accent or the top of a
    letter, which then stays unmasked (and a cut top row can hide the
    right arm of a "y"). Each glyph is a connected piece of the text colour:
    pieces that lie mostly inside the box and end within a quarter of a line
    height around it (at least two pixels) are taken in whole. A piece
    reaching further, or mostly outside, is a region of the image in that
    colour, not a glyph, and changes nothing. ``up``/``down``: whether the
    box may grow above / below (where the detector box cut the line);
    ``seen``: the detector box's columns; pieces wholly outside them (found
    by following the line) may grow either way. ``tolerance``: how far a
    sample may be from ``colour`` (3 on a windowed view; 0 on stored values,
    where drawn text is exact).
    """
    x0, y0, x1, y1 = box
    rows, cols = image.shape[:2]
    h = y1 - y0
    if h <= 0 or x1 <= x0:
        return box
    # A glyph reaches a quarter of a line height above or below (descender,
    # accent) and up to a line height sideways (the foot of a final "L").
    m = max(3, h // 4 + 1)
    mx = max(3, h)
    wx0, wy0, wx1, wy1 = max(0, x0 - mx), max(0, y0 - m), min(cols, x1 + mx), min(rows, y1 + m)
    window = image[wy0:wy1, wx0:wx1].astype(np.int64)
    ink = (np.abs(window - colour).max(axis=-1) <= tolerance).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    if n <= 1:
        return box
    inside = labels[y0 - wy0 : y1 - wy0, x0 - wx0 : x1 - wx0]
    counts = np.bincount(inside.ravel(), minlength=n)
    wh, ww = window.shape[:2]
    out = [x0, y0, x1, y1]
    for i in range(1, n):
        x, y, bw, bh = (int(v) for v in stats[i, :4])
        unseen = seen is not None and (wx0 + x >= seen[1] or wx0 + x + bw <= seen[0])
        # Mostly inside: a glyph the box cut; a piece mostly outside that
        # merely touches the box is something else in the text's colour
        # (a comma of a followed word may hang below the line).
        if counts[i] == 0 or counts[i] < (0.34 if unseen else 0.5) * int(stats[i, 4]):
            continue
        # Touching the window's edge (where that is not the image's edge)
        # means it may go on: not a glyph.
        if (x == 0 and wx0 > 0) or (y == 0 and wy0 > 0):
            continue
        if (x + bw == ww and wx1 < cols) or (y + bh == wh and wy1 < rows):
            continue
        if not unseen and ((not up and wy0 + y < y0) or (not down and wy0 + y + bh > y1)):
            continue
        out = [
            min(out[0], wx0 + x),
            min(out[1], wy0 + y),
            max(out[2], wx0 + x + bw),
            max(out[3], wy0 + y + bh),
        ]
    return out[0], out[1], out[2], out[3]


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
