"""Find text the detector missed by its ink: connected strokes of one exact stored value.

Burned-in text is drawn by a graphics routine in one exact value (or
colour); anatomy varies from pixel to pixel. Where text crosses a
bright/dark edge, or is drawn in a grey close to the tissue under it, the
windowed picture shows it with little or no contrast and the detector finds
nothing, although in the *stored* values the strokes are exactly equal and
unlike most of their surroundings.

This is a cheap look at the stored values (neighbour comparisons, a
histogram per tile, connected components) that finds lines of glyph-sized
strokes of one exact value which no detected region covers. Each such line
is then shown to the detector again on a *key picture*: the pixels of that
value in black on white, everything else blank. Nothing is masked on this
look alone; the detector must find a text line on the key picture. The
second detection runs only on small crops and only where such lines exist,
so its cost is small next to the full-frame detection.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from .mask import follow_stroke_ends, walk_columns

__all__ = [
    "InkLine",
    "complete_in_stored",
    "find_ink_lines",
    "glyph_extent",
    "key_picture",
    "stored_key",
]


@dataclass(frozen=True)
class InkLine:
    """A candidate text line: pixels of stored value ``value`` in ``box`` (x0, y0, x1, y1)."""

    value: int
    box: tuple[int, int, int, int]
    strokes: int


def stored_key(frame: NDArray[np.generic]) -> NDArray[np.int64]:
    """One integer per pixel that is equal exactly when the stored samples are equal."""
    a = np.asarray(frame)
    if a.ndim == 2:
        return a.astype(np.int64)
    k = np.zeros(a.shape[:2], dtype=np.int64)
    for c in range(a.shape[2]):
        k = (k << 17) | (a[:, :, c].astype(np.int64) & 0x1FFFF)
    return k


def _extreme_key(frame: NDArray[np.generic], highest: bool) -> int:
    """The key of the lowest or highest stored value, per sample."""
    pick = np.max if highest else np.min
    if frame.ndim == 2:
        return int(pick(frame))
    k = 0
    for c in range(frame.shape[2]):
        k = (k << 17) | (int(pick(frame[:, :, c])) & 0x1FFFF)
    return k


def _floor(frame: NDArray[np.generic]) -> int:
    """The key of the lowest stored value (per sample): air, clipped or masked-out areas."""
    return _extreme_key(frame, highest=False)


def _ringed_by_one_value(block: NDArray[np.int64], value: int) -> bool:
    """Whether the pixels around those of ``value`` hold one other value (a banner behind text)."""
    members = (block == value).astype(np.uint8)
    ring = cv2.dilate(members, np.ones((3, 3), np.uint8)).astype(bool) & ~members.astype(bool)
    around = block[ring]
    if len(around) < 8:
        return False
    _, counts = np.unique(around, return_counts=True)
    return bool(counts.max() >= 0.8 * len(around))


def _ceiling(frame: NDArray[np.generic]) -> int:
    """The key of the highest stored value (per sample): white text, the brightest overlay."""
    return _extreme_key(frame, highest=True)


def _equal_neighbours(key: NDArray[np.int64]) -> NDArray[np.uint8]:
    """How many of the 8 neighbours hold exactly the same value, for every pixel."""
    h, w = key.shape
    padded = np.pad(key, 1, mode="constant", constant_values=np.iinfo(np.int64).min)
    out = np.zeros((h, w), dtype=np.uint8)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy == 0 and dx == 0:
                continue
            out += padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] == key
    return out


def _samples(frame: NDArray[np.generic]) -> NDArray[np.int64]:
    """The stored samples as (rows, columns, samples) integers, for value distances."""
    a = np.asarray(frame)
    return (a[:, :, np.newaxis] if a.ndim == 2 else a).astype(np.int64)


def _is_peak(samples: NDArray[np.int64], value: NDArray[np.int64], ratio: float) -> bool:
    """Whether ``value`` is held by clearly more pixels than the values just next to it.

    Drawn text holds one exact value; noise and smooth anatomy hold the
    neighbouring values about as often as any one value. The distance of
    two values is the largest difference of any sample.
    """
    dist = np.abs(samples - value).max(axis=-1)
    exact = int((dist == 0).sum())
    near = int(((dist >= 1) & (dist <= 2)).sum())
    return exact >= ratio * near


def find_ink_lines(
    frame: NDArray[np.generic],
    covered: NDArray[np.bool_],
    *,
    tile: int = 32,
    min_strokes: int = 12,
    max_height: int = 48,
    max_values: int = 6,
) -> list[InkLine]:
    """Lines of glyph-like strokes of one exact value outside ``covered`` (boolean, frame shape).

    A value is a candidate where, in some tile, it is the most frequent
    value among pixels with at least two equal neighbours (strokes) and
    holds at least ``min_strokes`` of them without filling the tile (a flat
    background or banner fills it) and is a *peak*: held by more pixels
    than the values one or two steps away together (noise and smooth
    anatomy hold the neighbouring values about as often). Its connected
    pieces are kept when they are glyph-sized: not too tall, not a filled
    rectangle, strokes thin for their height. Pieces side by side at glyph
    spacing form a line, which must again be a peak within its own box.
    """
    key = stored_key(frame)
    samples = _samples(frame)
    h, w = key.shape
    strokes = (_equal_neighbours(key) >= 2) & ~covered
    if int(strokes.sum()) < min_strokes:
        return []
    floor = _floor(np.asarray(frame))
    ceiling = _ceiling(np.asarray(frame))
    support: dict[int, list[tuple[int, int]]] = {}
    for ty in range(0, h, tile):
        for tx in range(0, w, tile):
            s = strokes[ty : ty + tile, tx : tx + tile]
            if int(s.sum()) < min_strokes:
                continue
            block = key[ty : ty + tile, tx : tx + tile]
            vals, counts = np.unique(block[s], return_counts=True)
            # The lowest value only where it is ringed by one value: dark
            # text on a banner too small for the detector among anatomy
            # (clipped ADC patches of the lowest value border on anatomy).
            at = int(np.searchsorted(vals, floor))
            if (
                at < len(vals)
                and int(vals[at]) == floor
                and min_strokes <= counts[at] <= 0.6 * s.size
                and _ringed_by_one_value(block, floor)
            ):
                support.setdefault(floor, []).append((ty, tx))
            order = [int(i) for i in np.argsort(counts)[::-1][:3]]
            # The top value as well, however rare in the tile: small white
            # text over smooth 8-bit anatomy (which repeats its values)
            # is never among the most frequent.
            at = int(np.searchsorted(vals, ceiling))
            if at < len(vals) and int(vals[at]) == ceiling and at not in order:
                order.append(at)
            for i in order:
                v = int(vals[i])
                if counts[i] < min_strokes:
                    continue
                # A value filling the tile is a background (air, a banner).
                # The lowest value is where clipped or masked anatomy is
                # flat (ADC maps hold ragged patches of 0); dark text is
                # drawn on light banners, which the detector sees.
                if counts[i] > 0.6 * s.size or v == floor:
                    continue
                first = np.argmax(block == v)
                value = samples[ty + first // block.shape[1], tx + first % block.shape[1]]
                if _is_peak(samples[ty : ty + tile, tx : tx + tile], value, 1.0):
                    support.setdefault(v, []).append((ty, tx))
                    break
    if not support:
        return []
    # The lowest and the top value are ranked outside the limit: the top
    # value is a candidate in many tiles of a frame with white text or
    # bright anatomy and would otherwise push a grey line's value (text as
    # grey as the tissue, supported in a few tiles only) off the list.
    extremes = [(v, t) for v, t in support.items() if v in (floor, ceiling)]
    others = [(v, t) for v, t in support.items() if v not in (floor, ceiling)]
    ranked = sorted(others, key=lambda kv: -len(kv[1]))[:max_values] + extremes
    lines: list[InkLine] = []
    for value, tiles in ranked:
        # Only the tiles where the value is a candidate and their neighbours.
        oy = max(0, min(t[0] for t in tiles) - tile)
        ox = max(0, min(t[1] for t in tiles) - tile)
        ey = min(h, max(t[0] for t in tiles) + 2 * tile)
        ex = min(w, max(t[1] for t in tiles) + 2 * tile)
        area = np.zeros((ey - oy, ex - ox), dtype=bool)
        for ty, tx in tiles:
            area[
                max(0, ty - tile - oy) : ty + 2 * tile - oy,
                max(0, tx - tile - ox) : tx + 2 * tile - ox,
            ] = True
        members = (key[oy:ey, ox:ex] == value) & area & ~covered[oy:ey, ox:ex]
        ys, xs = np.nonzero(key[oy:ey, ox:ex] == value)
        value_samples = samples[oy + int(ys[0]), ox + int(xs[0])]
        for line in _lines_of(members, value, max_height, covered[oy:ey, ox:ex]):
            x0, y0, x1, y1 = line.box
            x0, y0, x1, y1 = x0 + ox, y0 + oy, x1 + ox, y1 + oy
            # On the rows the value is dense in: pieces of anatomy of the
            # value that joined the line make its box taller than the text,
            # and text as grey as the tissue has the tissue's values around.
            per_row = (key[y0:y1, x0:x1] == value).sum(axis=1)
            dense = np.nonzero(per_row >= 0.3 * per_row.max())[0]
            by0, by1 = y0 + int(dense[0]), y0 + int(dense[-1]) + 1
            if _is_peak(samples[by0:by1, x0:x1], value_samples, 1.5):
                lines.append(InkLine(value, (x0, y0, x1, y1), line.strokes))
    return lines


def _continues_found_text(covered: NDArray[np.bool_], box: tuple[int, int, int, int]) -> bool:
    """Whether found text lies on the same rows within a glyph gap of ``box``, on either side."""
    x0, y0, x1, y1 = box
    lh = y1 - y0
    gap = int(1.5 * lh)
    band = covered[y0 + lh // 4 : y1 - lh // 4]
    return bool(band[:, max(0, x0 - gap) : x0].any() or band[:, x1 : x1 + gap].any())


def _lines_of(
    members: NDArray[np.bool_],
    value: int,
    max_height: int,
    covered: NDArray[np.bool_] | None = None,
) -> list[InkLine]:
    """Lines of glyph-like pieces of ``members``; ``covered``: found text (same shape).

    A line needs two pieces and the width of one and a half line heights,
    or, shorter ("ID" before a number the detector boxed on its own), two
    pieces that continue found text on the same rows.
    """
    n, labels, stats, _ = cv2.connectedComponentsWithStats(members.astype(np.uint8), connectivity=8)
    if n <= 1:
        return []
    # Stroke thickness: twice the largest distance from a piece's pixels to
    # its outside. Glyph strokes are thin for their height (about a tenth
    # of it, a fifth when bold); a patch of clipped or flat anatomy is not.
    inner = cv2.distanceTransform(members.astype(np.uint8), cv2.DIST_L2, 3)
    thickness = np.zeros(n, dtype=np.float32)
    np.maximum.at(thickness, np.asarray(labels, dtype=np.intp)[members], inner[members])
    pieces: list[tuple[int, int, int, int]] = []
    for i in range(1, n):
        x, y, bw, bh, area = (int(v) for v in stats[i])
        if area < 3 or bh < 3 or bh > max_height or bw > 8 * bh + 8:
            continue
        if bw >= 4 and bh >= 4 and area > 0.9 * bw * bh:
            continue  # a filled rectangle: a banner or a flat patch, not a glyph
        if 2 * thickness[i] > 0.3 * bh + 2:
            continue  # too thick for a stroke of a glyph this tall
        pieces.append((x, y, x + bw, y + bh))
    pieces.sort()
    lines: list[InkLine] = []
    used = [False] * len(pieces)
    for i, p in enumerate(pieces):
        if used[i]:
            continue
        used[i] = True
        group = [p]
        x0, y0, x1, y1 = p
        grew = True
        while grew:
            grew = False
            for j, q in enumerate(pieces):
                if used[j]:
                    continue
                lh = y1 - y0
                overlap = min(y1, q[3]) - max(y0, q[1])
                gap = max(x0, q[0]) - min(x1, q[2])
                if overlap >= 0.5 * min(lh, q[3] - q[1]) and gap <= 1.5 * max(lh, q[3] - q[1]):
                    used[j] = True
                    group.append(q)
                    x0, y0 = min(x0, q[0]), min(y0, q[1])
                    x1, y1 = max(x1, q[2]), max(y1, q[3])
                    grew = True
        lh = y1 - y0
        if len(group) < 2 or lh < 5 or lh > max_height:
            continue
        if x1 - x0 >= 1.5 * lh or (
            covered is not None and _continues_found_text(covered, (x0, y0, x1, y1))
        ):
            lines.append(InkLine(value, (x0, y0, x1, y1), len(group)))
    return lines


def key_picture(
    frame: NDArray[np.generic], line: InkLine, margin: int | None = None
) -> tuple[NDArray[np.uint8], tuple[int, int]]:
    """The pixels of the line's value in black on white around the line, and the crop's origin.

    The detector reads this picture without the anatomy that hid the text;
    box coordinates on it map back by adding the origin.
    """
    key = stored_key(frame)
    h, w = key.shape
    x0, y0, x1, y1 = line.box
    # Room above and below for the detector, and along the line for the
    # words of it that were not seen as candidates.
    m = margin if margin is not None else max(8, y1 - y0)
    mx = 4 * m
    cx0, cy0, cx1, cy1 = max(0, x0 - mx), max(0, y0 - m), min(w, x1 + mx), min(h, y1 + m)
    ink = key[cy0:cy1, cx0:cx1] == line.value
    grey = np.where(ink, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2)), (cx0, cy0)


def glyph_extent(
    picture: NDArray[np.uint8], box: tuple[int, int, int, int]
) -> tuple[int, int, int, int]:
    """``box`` (on a key picture) shrunk to the glyphs of its value, leaving scattered tissue out.

    Text drawn at a tissue value has tissue pixels of that value around it;
    the detector box, its fit and the line following take them in (a 13 px
    line masked as a 27 px box). Those pixels are scattered alone or in
    small clusters; glyphs are pieces of many pixels. The box becomes the
    extent of the pieces at least a fifth the size of the largest one
    (dots and colons fall inside the other glyphs' rows). Only shrinks.
    """
    x0, y0, x1, y1 = box
    crop = picture[y0:y1, x0:x1]
    ink = (crop[:, :, 0] if crop.ndim == 3 else crop) == 0
    # Stroke pixels only (two or more inked neighbours): loose tissue pixels
    # next to a glyph would join it and widen its piece.
    neighbours = cv2.filter2D(ink.astype(np.uint8), -1, np.ones((3, 3), np.float32)) - ink
    ink &= neighbours >= 2
    if not ink.any():
        return box
    _, _, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    pieces = stats[1:]
    areas = pieces[:, cv2.CC_STAT_AREA]
    keep = pieces[areas >= max(4, 0.2 * int(areas.max()))]
    gy0 = int(keep[:, cv2.CC_STAT_TOP].min())
    gy1 = int((keep[:, cv2.CC_STAT_TOP] + keep[:, cv2.CC_STAT_HEIGHT]).max())
    # Thin glyphs ("I", "1") are small next to a wide one that tissue joined:
    # along the line, any piece half the line's height within its rows.
    top, tall = pieces[:, cv2.CC_STAT_TOP], pieces[:, cv2.CC_STAT_HEIGHT]
    along = pieces[
        (areas >= max(4, 0.2 * int(areas.max())))
        | ((tall >= 0.5 * (gy1 - gy0)) & (top >= gy0 - 1) & (top + tall <= gy1 + 1))
    ]
    gx0 = int(along[:, cv2.CC_STAT_LEFT].min())
    gx1 = int((along[:, cv2.CC_STAT_LEFT] + along[:, cv2.CC_STAT_WIDTH]).max())
    return x0 + gx0, y0 + gy0, x0 + gx1, y0 + gy1


def _text_value(
    samples: NDArray[np.int64], key: NDArray[np.int64], box: tuple[int, int, int, int], floor: int
) -> NDArray[np.int64] | None:
    """The stored samples of the text drawn in ``box`` (window coordinates), if one value is it.

    The text value is a frequent value of connected strokes inside the box,
    a peak among its neighbouring values, and rare just outside the box: a
    background or banner value surrounds the box, the text's value meets
    its outside only where a glyph was cut. The lowest value (``floor``,
    a key) is not taken: clipped or masked anatomy is flat there in ragged
    patches, and dark text on a banner is fitted well on the view.
    """
    x0, y0, x1, y1 = box
    inner = key[y0:y1, x0:x1]
    if inner.shape[0] < 3 or inner.shape[1] < 3:
        return None
    strokes = _equal_neighbours(inner) >= 2
    vals, counts = np.unique(inner[strokes], return_counts=True)
    h, w = key.shape
    outer = np.concatenate(
        [
            key[max(0, y0 - 1), x0:x1],
            key[min(h - 1, y1), x0:x1],
            key[y0:y1, max(0, x0 - 1)],
            key[y0:y1, min(w - 1, x1)],
        ]
    )
    for i in np.argsort(counts)[::-1][:3]:
        if counts[i] < max(6, y1 - y0):
            break
        v = int(vals[i])
        if v == floor or float((outer == v).mean()) >= 0.25:
            continue  # the surroundings' value: background, a banner
        first = int(np.argmax(inner == v))
        value = samples[y0 + first // inner.shape[1], x0 + first % inner.shape[1]]
        if _is_peak(samples[y0:y1, x0:x1], value, 1.5):
            return value
    return None


def _follow_line(
    frame: NDArray[np.generic], box: tuple[int, int, int, int], value: NDArray[np.int64]
) -> tuple[int, int]:
    """The columns the line of ``value`` in ``box`` runs over, left and right of the box.

    As :func:`extend_along_line` on the view, but by glyphs: connected
    pieces of the value that lie within the line's rows (a quarter of a
    line height of slack) and are no wider than three line heights, across
    gaps up to one and a half line heights. A region of the value touching
    the line (a bright edge of the image) is no glyph and is not followed.
    Only on a side where glyphs run up to the box: where the detector saw
    the line end, slack lies between.
    """
    x0, y0, x1, y1 = box
    rows, cols = frame.shape[0], frame.shape[1]
    h = y1 - y0
    margin = max(2, h // 4)
    top, bottom = max(0, y0 - margin - 1), min(rows, y1 + margin + 1)
    ink = (_samples(np.asarray(frame)[top:bottom]) == value).all(axis=-1)
    n, _, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    line_col = np.zeros(cols, dtype=bool)
    for i in range(1, n):
        x, y, bw, bh, area = (int(v) for v in stats[i])
        gy0, gy1 = top + y, top + y + bh
        if area < 3 or bw > 3 * h or gy0 < y0 - margin or gy1 > y1 + margin:
            continue
        if min(gy1, y1) - max(gy0, y0) < 0.6 * bh:
            continue
        line_col[x : x + bw] = True
    max_gap = max(3, int(1.5 * h))
    reach = max(3, h // 4 + 2)

    def walk(start: int, step: int, stop: int) -> int:
        return walk_columns(line_col, start, step, stop, max_gap)

    left, right = x0, x1
    if line_col[max(0, x0) : min(cols, x0 + reach)].any():
        left = min(x0, walk(x0 - 1, -1, -1))
    if line_col[max(0, x1 - reach) : x1].any():
        right = max(x1, walk(x1, 1, cols) + 1)
    return left, right


def complete_in_stored(
    frame: NDArray[np.generic], box: tuple[int, int, int, int]
) -> tuple[int, int, int, int]:
    """Grow a masked box (x0, y0, x1, y1 in stored pixels) over the rest of its text.

    The fit works on a windowed view, where bright text over bright anatomy
    (both clipped to white) or a serif's one-pixel tip has no contrast: the
    box can end a column short of a glyph, or where the line runs on over
    near-white anatomy. In the stored values the text is still one exact
    value: the line of that value is followed on (:func:`_follow_line`) and
    the glyphs of that value that lie mostly inside the box are taken in
    whole (:func:`follow_stroke_ends` with no tolerance), nothing else.
    """
    x0, y0, x1, y1 = box
    rows, cols = frame.shape[0], frame.shape[1]
    h = y1 - y0
    if h < 3 or x1 - x0 < 3:
        return box
    a = np.asarray(frame)
    # The box and a pixel around it, for the outside test.
    wx0, wy0, wx1, wy1 = max(0, x0 - 1), max(0, y0 - 1), min(cols, x1 + 1), min(rows, y1 + 1)
    window = a[wy0:wy1, wx0:wx1]
    samples = _samples(window)
    inner = (x0 - wx0, y0 - wy0, x1 - wx0, y1 - wy0)
    value = _text_value(samples, stored_key(window), inner, _floor(a))
    if value is None:
        return box
    # The text's own rows: a coarse box has a margin, which would make the
    # line look taller and its gaps wider than they are.
    ink = (samples[inner[1] : inner[3], inner[0] : inner[2]] == value).all(axis=-1)
    text_rows = np.nonzero((ink & (_equal_neighbours(ink.astype(np.int64)) >= 2)).any(axis=1))[0]
    ty0, ty1 = y0 + int(text_rows[0]), y0 + int(text_rows[-1]) + 1
    if ty1 - ty0 < 3:
        return box
    fx0, fx1 = _follow_line(a, (x0, ty0, x1, ty1), value)
    # The window follow_stroke_ends looks at.
    th = ty1 - ty0
    m, mx = max(3, th // 4 + 1) + 1, max(3, th) + 1
    wx0, wy0, wx1, wy1 = max(0, fx0 - mx), max(0, ty0 - m), min(cols, fx1 + mx), min(rows, ty1 + m)
    grown = follow_stroke_ends(
        _samples(a[wy0:wy1, wx0:wx1]),
        (fx0 - wx0, ty0 - wy0, fx1 - wx0, ty1 - wy0),
        value,
        tolerance=0,
        # Sideways only for the glyphs the box holds (a serif, a hook a
        # column outside); white anatomy can touch white text from above
        # or below. Glyphs of followed words may grow either way.
        up=False,
        down=False,
        seen=(x0 - wx0, x1 - wx0),
    )
    return (
        min(x0, grown[0] + wx0),
        min(y0, grown[1] + wy0),
        max(x1, grown[2] + wx0),
        max(y1, grown[3] + wy0),
    )
