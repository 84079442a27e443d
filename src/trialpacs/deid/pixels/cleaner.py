"""The Clean Pixel Data step: scan, decide, mask, re-encode, report.

The cleaner fails closed. Anything that prevents it from looking at the
pixels (undecodable data, an OCR error, a timeout) raises
:class:`PixelCleanError`, and the engine keeps that instance out of the
output for a person to decide. "No text found" is only ever the result of a
scan that ran to the end.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset

from trialpacs.deid.pixel_hook import MaskedBox, PixelCleanError, PixelCleanReport
from trialpacs.settings import DEFAULT_MAX_FRAMES

from .decode import DecodedPixels, UnsupportedPixelData, decode
from .encode import write_pixels
from .graphics import clean_graphics
from .inkkey import (
    complete_in_stored,
    find_ink_lines,
    glyph_extent,
    key_picture,
    stored_key,
)
from .layouts import LayoutRules, default_layout_rules
from .mask import ALL_FRAMES, Box, apply_boxes, extend_along_line, mask_value, pad_box, text_extent
from .ocr import OcrEngine, RapidOcrEngine
from .policy import Decision, PhiMatcher, TextPolicy, make_policy
from .preprocess import PreprocessOptions, frame_to_views
from .scan import ScanRules

__all__ = ["FramePlan", "OcrPixelCleaner"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FramePlan:
    """Which frames of a multi-frame instance are read by OCR.

    ``"all"`` reads every frame and masks each frame's own boxes.
    ``"sample"`` (for instances with more than ``sample_above`` frames) reads
    ``sample_size`` evenly spaced frames (always the first and the last)
    plus one *static composite* - the pixels that do not change across the
    cine, on a blank background - and masks the union of all boxes on every
    frame. Burned-in patient banners are static overlays, which the
    composite shows without moving anatomy underneath; text that appears in
    only a few unsampled frames would be missed, so trials that expect that
    set ``"all"``.
    """

    mode: str = "sample"
    sample_size: int = 5
    sample_above: int = 8
    static_tolerance: float = 0.02

    def frames_to_read(self, n_frames: int) -> tuple[list[int], bool]:
        """(frame indices, whether the union is applied to all frames)."""
        if self.mode == "all" or n_frames <= self.sample_above:
            return list(range(n_frames)), False
        idx = np.unique(np.linspace(0, n_frames - 1, self.sample_size).round().astype(int))
        return [int(i) for i in idx], True


@dataclass
class _Found:
    frame: int
    box: Box
    text: str | None
    reason: str
    masked: bool = True


def _declared_frames(ds: Dataset) -> int:
    """NumberOfFrames as the header says; unreadable counts as too many (fail closed)."""
    raw = ds.get("NumberOfFrames")
    if raw is None or raw == "":
        return 1
    try:
        return int(raw)
    except (TypeError, ValueError) as exc:
        raise PixelCleanError(f"pixel data not checked: NumberOfFrames {raw!r} unreadable") from exc


def _sha256(text: str | None) -> str | None:
    if text is None or not text.strip():
        return None
    return hashlib.sha256(text.strip().encode("utf-8")).hexdigest()


def static_composite(decoded: DecodedPixels, tolerance: float) -> NDArray[np.generic]:
    """First frame where pixels stay (nearly) constant over the cine, background elsewhere."""
    frames = decoded.frames
    first = frames[0]
    span = np.ptp(frames, axis=0)
    value_range = float(frames.max()) - float(frames.min())
    tol = max(0.0, tolerance * value_range)
    still = span <= tol
    if decoded.is_color:
        still = np.all(still, axis=-1)
    out = np.array(first, copy=True)
    fill = mask_value(decoded, first)
    out[~still] = fill
    return out


@dataclass
class OcrPixelCleaner:
    """Implements :class:`trialpacs.deid.pixel_hook.PixelCleaner` with OCR and layout rules.

    ``read_all_text``: recognise every region, so that every masked box
    carries a text hash; by default only regions whose reading can change
    the policy's decision are recognised (long lines under mask-all-text
    are masked unread and recorded with ``text_sha256=None``).

    ``timeout_s`` bounds the OCR of one instance; on expiry the instance is
    refused (the worker thread is abandoned, not killed, which Python cannot
    do safely - it finishes in the background and its result is dropped).
    """

    policy: TextPolicy = field(default_factory=lambda: make_policy("mask-all-text"))
    scan_rules: ScanRules = field(default_factory=ScanRules)
    layout_rules: LayoutRules = field(default_factory=default_layout_rules)
    engine: OcrEngine = field(default_factory=RapidOcrEngine)
    preprocess: PreprocessOptions = field(default_factory=PreprocessOptions)
    frame_plan: FramePlan = field(default_factory=FramePlan)
    clean_graphics: bool = True
    pad: int = 2
    pad_fraction: float = 0.05
    tighten: bool = True
    read_all_text: bool = False
    timeout_s: float | None = 120.0
    max_text_height_fraction: float = 0.3
    ner: Callable[[str], bool] | None = None
    # After detection, look at the stored values for lines of one exact
    # value that no region covers and show them to the detector again on a
    # key picture (inkkey.py): grey text across an anatomy edge or as grey
    # as the tissue under it.
    ink_key: bool = True
    # The ingest limit (setting max_frames): ingest refuses larger objects, so
    # the cleaner should never see one; if it does, it refuses rather than
    # decoding and reading thousands of frames.
    max_frames: int | None = DEFAULT_MAX_FRAMES

    def clean(self, ds: Dataset, phi_terms: Sequence[str]) -> PixelCleanReport:
        notes: list[str] = []
        graphics_removed: list[str] = []
        if self.clean_graphics:
            graphics_removed = clean_graphics(ds)
            if graphics_removed:
                notes.append("removed " + ", ".join(graphics_removed))
        if "PixelData" not in ds:
            return PixelCleanReport(
                scanned=False,
                reason="; ".join(["no pixel data", *notes]),
                modified=bool(graphics_removed),
            )
        decision = self.scan_rules.decide(ds)
        layouts = self.layout_rules.matching(ds)
        if not decision.scan and not layouts:
            return PixelCleanReport(
                scanned=False,
                reason="; ".join([f"not scanned: {decision.reason}", *notes]),
                modified=bool(graphics_removed),
            )
        self._check_frames(_declared_frames(ds), "NumberOfFrames")
        try:
            decoded = decode(ds)
        except UnsupportedPixelData as exc:
            raise PixelCleanError(f"pixel data cannot be checked: {exc}") from exc
        self._check_frames(decoded.n_frames, "decoded frames")

        rows, cols = int(decoded.frames.shape[1]), int(decoded.frames.shape[2])
        found: list[_Found] = []
        for rule in layouts:
            for region in rule.regions:
                clipped = region.clip(rows, cols)
                if clipped is not None:
                    found.append(_Found(ALL_FRAMES, clipped, None, f"layout:{rule.id}"))
        if layouts:
            notes.append("layout rules " + ", ".join(r.id for r in layouts))

        if decision.scan:
            phi = PhiMatcher.from_terms(phi_terms, ner=self.ner)
            ocr_found, ocr_note = self._scan_with_deadline(ds, decoded, phi)
            found += ocr_found
            notes.append(ocr_note)

        changed = apply_boxes(decoded, ((f.frame, f.box) for f in found), ds)
        if changed:
            result = write_pixels(ds, decoded)
            notes.append(f"pixel data {result.note}")
        if decision.scan:
            ds.BurnedInAnnotation = "NO"
        boxes = [
            MaskedBox(
                frame=f.frame,
                x=f.box.x,
                y=f.box.y,
                width=f.box.width,
                height=f.box.height,
                text_sha256=_sha256(f.text),
                reason=f.reason,
            )
            for f in found
        ]
        head = (
            f"scanned: {decision.reason}"
            if decision.scan
            else f"not OCR-scanned: {decision.reason}"
        )
        return PixelCleanReport(
            scanned=decision.scan,
            reason="; ".join([head, *notes]),
            boxes=boxes,
            modified=changed or bool(graphics_removed),
        )

    def _check_frames(self, n_frames: int, source: str) -> None:
        if self.max_frames is not None and n_frames > self.max_frames:
            raise PixelCleanError(
                f"pixel data not checked: {n_frames} frames ({source}) exceed the limit of "
                f"{self.max_frames} (max_frames)"
            )

    # --- OCR ------------------------------------------------------------------

    def _scan_with_deadline(
        self, ds: Dataset, decoded: DecodedPixels, phi: PhiMatcher
    ) -> tuple[list[_Found], str]:
        if self.timeout_s is None:
            try:
                return self._scan(ds, decoded, phi)
            except PixelCleanError:
                raise
            except Exception as exc:
                raise PixelCleanError(f"OCR failed ({self.engine.name}): {exc}") from exc
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pixel-ocr")
        future = pool.submit(self._scan, ds, decoded, phi)
        try:
            return future.result(timeout=self.timeout_s)
        except FutureTimeout as exc:
            future.cancel()
            raise PixelCleanError(
                f"OCR timed out after {self.timeout_s:.0f} s ({self.engine.name})"
            ) from exc
        except PixelCleanError:
            raise
        except Exception as exc:
            raise PixelCleanError(f"OCR failed ({self.engine.name}): {exc}") from exc
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _scan(
        self, ds: Dataset, decoded: DecodedPixels, phi: PhiMatcher
    ) -> tuple[list[_Found], str]:
        started = time.perf_counter()
        n = decoded.n_frames
        indices, union = self.frame_plan.frames_to_read(n)
        self._check_frames(len(indices), "frames to read")
        pictures: list[tuple[int, NDArray[np.generic]]] = [(i, decoded.frames[i]) for i in indices]
        if n > 1:
            # The static composite shows fixed overlays without the moving
            # anatomy under them; its boxes are masked on every frame, also
            # when every frame is read (a frame's own detection can lose part
            # of a banner over bright anatomy).
            pictures.append(
                (ALL_FRAMES, static_composite(decoded, self.frame_plan.static_tolerance))
            )
        found: list[_Found] = []
        n_regions = 0
        n_kept = 0
        for index, frame in pictures:
            target = ALL_FRAMES if union or index == ALL_FRAMES else index
            for f in self._read_frame(ds, decoded, frame, phi):
                n_regions += 1
                if not f.masked:
                    n_kept += 1
                    continue
                f.frame = target
                if target == ALL_FRAMES and any(
                    g.frame == ALL_FRAMES and _near(g.box, f.box) for g in found
                ):
                    continue
                found.append(f)
        what = (
            f"{len(indices)} of {n} frames + static composite, union on all frames"
            if union
            else f"{n} frame(s)" + (" + static composite on all frames" if n > 1 else "")
        )
        note = (
            f"{self.engine.name} read {what} with policy {self.policy.name}: "
            f"{n_regions} text regions, {n_regions - n_kept} masked, {n_kept} kept "
            f"({time.perf_counter() - started:.2f} s)"
        )
        return found, note

    def _read_frame(
        self,
        ds: Dataset,
        decoded: DecodedPixels,
        frame: NDArray[np.generic],
        phi: PhiMatcher,
    ) -> list[_Found]:
        rows, cols = frame.shape[0], frame.shape[1]
        max_height = max(48.0, self.max_text_height_fraction * rows)
        out: list[_Found] = []
        for view in frame_to_views(frame, decoded.photometric, self.preprocess, ds=ds):
            regions = self.engine.detect(view.image)
            # A "line" taller than a third of the image is the detector
            # reacting to anatomy or a field-of-view edge, not text; masking
            # it would blank the image.
            regions = [r for r in regions if r.height / view.scale <= max_height]
            if not regions:
                continue
            to_read = [r for r in regions if self.read_all_text or self.policy.wants_text(r)]
            if to_read:
                read = iter(self.engine.recognize(view.image, to_read))
                regions = [
                    next(read) if self.read_all_text or self.policy.wants_text(r) else r
                    for r in regions
                ]
            line: list[_Found] = []
            for region in regions:
                decision = self.policy.decide(region, phi)
                exact = False
                if self.tighten:
                    fit = text_extent(view.image, region)
                    exact = fit.exact
                    if region.second_look and not _confirmed_line(fit.box, exact):
                        continue  # no drawn line of text confirmed in a second-look box
                    x0, y0, x1, y1 = extend_along_line(view.image, fit)
                    if not decision.mask and _unread_run(fit.box, (x0, x1)):
                        # The kept text ("62", an allow-listed number) runs on
                        # into text the detector did not box and nobody read
                        # ("15/01/19" before it): the line is masked.
                        decision = Decision(True, "line-followed-unread")
                else:
                    x0, y0, x1, y1 = region.x0, region.y0, region.x1, region.y1
                # A box fitted to the text pixels needs no margin; a coarse
                # one gets the padding.
                box = pad_box(
                    x0,
                    y0,
                    x1,
                    y1,
                    scale=view.scale,
                    pad=0 if exact else self.pad,
                    pad_fraction=0.0 if exact else self.pad_fraction,
                    rows=rows,
                    cols=cols,
                )
                if box is None:
                    continue
                line.append(_Found(0, box, region.text, f"ocr:{decision.reason}", decision.mask))
            _mask_fragments_next_to_masked(line)
            out += _join_line_pieces(line)
        if self.ink_key:
            out += self._read_ink_key(frame, out, phi)
        if self.tighten:
            # The view can hide a glyph's last column or a line's end (white
            # on near-white anatomy, a serif tip); the stored values still
            # hold them in the text's exact value. After the ink-key pass,
            # which looks outside the boxes as the view found them. Not the
            # ink-key boxes: they were found and followed on the stored value
            # already, and tissue of that value around the text would be
            # followed as if it were glyphs.
            for f in out:
                if f.masked and not f.reason.startswith("ocr:ink-key"):
                    b = f.box
                    gx0, gy0, gx1, gy1 = complete_in_stored(frame, (b.x, b.y, b.x1, b.y1))
                    f.box = Box(gx0, gy0, gx1 - gx0, gy1 - gy0)
        return out

    def _read_ink_key(
        self, frame: NDArray[np.generic], found: list[_Found], phi: PhiMatcher
    ) -> list[_Found]:
        """Text the detector missed on the views, found by its exact stored value (inkkey.py).

        Only lines of one exact value outside every region found so far are
        looked at, each on a small key picture (that value black on white);
        a region the detector finds there is decided by the policy and
        fitted like any other. Nothing is masked without the detector.
        """
        rows, cols = frame.shape[0], frame.shape[1]
        covered = np.zeros((rows, cols), dtype=bool)
        for f in found:
            covered[max(0, f.box.y - 2) : f.box.y1 + 2, max(0, f.box.x - 2) : f.box.x1 + 2] = True
        line: list[_Found] = []
        for ink_line in find_ink_lines(frame, covered):
            picture, (ox, oy) = key_picture(frame, ink_line)
            regions = [r for r in self.engine.detect(picture) if r.height <= 48]
            if not regions:
                continue
            to_read = [r for r in regions if self.read_all_text or self.policy.wants_text(r)]
            if to_read:
                read = iter(self.engine.recognize(picture, to_read))
                regions = [
                    next(read) if self.read_all_text or self.policy.wants_text(r) else r
                    for r in regions
                ]
            for region in regions:
                fit = text_extent(picture, region)
                if not _confirmed_line(fit.box, fit.exact):
                    continue  # the detector reacted to something that is not drawn text
                x0, y0, x1, y1 = extend_along_line(picture, fit)
                # The stored-value completion (a glyph the key picture's box
                # left out), then the glyph pieces of the value only: tissue
                # of the text's value around it is taken in by both.
                gx, gy, gx1, gy1 = complete_in_stored(frame, (x0 + ox, y0 + oy, x1 + ox, y1 + oy))
                value_at = stored_key(frame[gy:gy1, gx:gx1]) == ink_line.value
                x0, y0, x1, y1 = glyph_extent(
                    np.where(value_at, 0, 255).astype(np.uint8), (0, 0, gx1 - gx, gy1 - gy)
                )
                x0, y0, x1, y1 = x0 + gx, y0 + gy, x1 + gx, y1 + gy
                decision = self.policy.decide(region, phi)
                if not decision.mask and _unread_run(fit.box, (x0, x1)):
                    decision = Decision(True, "line-followed-unread")
                # One pixel around the exact value: drawn text is often
                # anti-aliased into its surroundings.
                box = pad_box(
                    x0,
                    y0,
                    x1,
                    y1,
                    scale=1.0,
                    pad=1,
                    pad_fraction=0.0,
                    rows=rows,
                    cols=cols,
                )
                if box is None:
                    continue
                line.append(
                    _Found(0, box, region.text, f"ocr:ink-key:{decision.reason}", decision.mask)
                )
        _mask_fragments_next_to_masked(line)
        return _join_line_pieces(line)


def _unread_run(fit: tuple[int, int, int, int], span: tuple[int, int]) -> bool:
    """Whether following the line took in more than the read text's own cut-off end.

    A detector box that cuts the last letter of a word ("LIVE|R") leaves a
    glyph or so to follow, which belongs to what was read; several more
    characters (wider than a line height and than half the read text) are
    text nobody read.
    """
    x0, y0, x1, y1 = fit
    added = max(0, x0 - span[0]) + max(0, span[1] - x1)
    return added > max(y1 - y0, 0.5 * (x1 - x0))


def _confirmed_line(box: tuple[int, int, int, int], exact: bool) -> bool:
    """Whether a fitted box looks like a drawn line: uniform-colour ink, a few characters long."""
    x0, y0, x1, y1 = box
    return exact and y1 - y0 >= 5 and x1 - x0 >= 2 * (y1 - y0)


def _same_line_neighbours(a: Box, b: Box) -> bool:
    """Whether two boxes are pieces of one text line (the detector split a word or name)."""
    overlap = min(a.y1, b.y1) - max(a.y, b.y)
    if overlap < 0.5 * min(a.height, b.height):
        return False
    gap = max(a.x, b.x) - min(a.x1, b.x1)
    return gap <= 1.5 * max(a.height, b.height)


def _mask_fragments_next_to_masked(found: list[_Found]) -> None:
    """Mask kept regions that continue a masked one on the same line.

    Detectors split lines at wide letter gaps ("HARTWELL JA" + "NE"); the
    fragment alone matches nothing, but it is part of the name.
    """
    changed = True
    while changed:
        changed = False
        for f in found:
            if f.masked:
                continue
            if any(g.masked and _same_line_neighbours(f.box, g.box) for g in found):
                f.masked = True
                f.reason = "ocr:next-to-masked-text"
                changed = True


def _join_line_pieces(found: list[_Found]) -> list[_Found]:
    """Merge masked pieces of one line into one box, covering the gaps between words.

    The detector splits lines at wide gaps; with tight boxes the gap can
    keep a sliver of a letter. A masked line is one rectangle.
    """
    kept = [f for f in found if not f.masked]
    pieces = [f for f in found if f.masked]
    merged = True
    while merged:
        merged = False
        for i, a in enumerate(pieces):
            for j in range(i + 1, len(pieces)):
                b = pieces[j]
                if _same_line_neighbours(a.box, b.box):
                    texts = [t for t in (a.text, b.text) if t]
                    pieces[i] = _Found(
                        a.frame,
                        a.box.union(b.box),
                        " ".join(texts) if texts else None,
                        a.reason if a.reason == b.reason else f"{a.reason}+{b.reason}",
                    )
                    del pieces[j]
                    merged = True
                    break
            if merged:
                break
    return pieces + kept


def _near(a: Box, b: Box, tol: int = 3) -> bool:
    return (
        abs(a.x - b.x) <= tol
        and abs(a.y - b.y) <= tol
        and abs(a.x1 - b.x1) <= tol
        and abs(a.y1 - b.y1) <= tol
    )
