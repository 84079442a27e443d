"""The image layer's per-series features, from a few central slices.

Each slice is normalised robustly (1st-99th percentile to 0-1, MONOCHROME1
inverted) and resampled to 64x64; the series vector is the mean over up to
three central slices of: an 8x8 thumbnail, a histogram of oriented gradients
(4x4 cells, 9 orientations), an intensity histogram, shape statistics of the
foreground (Otsu) and the field of view. Groups are kept apart (``GROUPS``) so
the scorer can weigh them equally whatever their length. No learnt weights:
everything here is computed, so nothing is downloaded. Features are symmetric
under left-right mirroring (see :func:`slice_features`).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset

SIZE = 64
CENTRAL = 3
GROUPS: dict[str, int] = {"thumb": 64, "hog": 144, "hist": 16, "shape": 9, "fov": 2}
DIM = sum(GROUPS.values())
FloatArray = NDArray[Any]  # float32 images and vectors (cv2's results are loosely typed)


class NoPixels(ValueError):
    """The series has no image the features can be computed from."""


def _position(ds: Dataset) -> float:
    pos = ds.get("ImagePositionPatient")
    if pos is not None and len(pos) == 3:
        try:
            return float(pos[2])
        except (TypeError, ValueError):
            pass
    return float(ds.get("InstanceNumber", 0) or 0)


def central_slices(datasets: Sequence[Dataset], count: int = CENTRAL) -> list[FloatArray]:
    """Up to ``count`` 2-D slices from the middle of the series (frames of a multi-frame too)."""
    with_pixels = [d for d in datasets if "PixelData" in d]
    if not with_pixels:
        raise NoPixels("no instance with pixel data")
    ordered = sorted(with_pixels, key=_position)
    mid = len(ordered) // 2
    chosen = ordered[max(0, mid - count // 2) : mid - count // 2 + count] or ordered[:count]
    slices: list[FloatArray] = []
    for ds in chosen:
        arr = np.asarray(ds.pixel_array)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        color = int(ds.get("SamplesPerPixel", 1) or 1) > 1
        if frames > 1:
            fmid = frames // 2
            picks = range(max(0, fmid - count // 2), min(frames, fmid - count // 2 + count))
            planes = [arr[i] for i in picks]
        else:
            planes = [arr]
        for plane in planes:
            img = plane.astype(np.float32)
            if color and img.ndim == 3:
                img = img.mean(axis=-1)
            if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
                img = img.max() - img
            slices.append(img)
        if len(slices) >= count:
            break
    return slices[:count]


def normalise(img: FloatArray) -> FloatArray:
    step = max(1, int(math.sqrt(img.size / 65536)))  # percentiles of ~64k pixels are enough
    lo, hi = np.percentile(img[::step, ::step], (1.0, 99.0))
    if hi <= lo:
        hi = lo + 1.0
    return np.clip((img - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def _hog(img: FloatArray) -> FloatArray:
    gx = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=3)
    mag = np.hypot(gx, gy)
    ang = (np.degrees(np.arctan2(gy, gx)) % 180.0) / 20.0
    bins = np.minimum(ang.astype(np.int32), 8)
    cell = SIZE // 4
    out = np.zeros((4, 4, 9), np.float32)
    for i in range(4):
        for j in range(4):
            sl = (slice(i * cell, (i + 1) * cell), slice(j * cell, (j + 1) * cell))
            out[i, j] = np.bincount(bins[sl].ravel(), mag[sl].ravel(), minlength=9)[:9]
    flat = out.ravel()
    return (flat / (np.linalg.norm(flat) + 1e-6)).astype(np.float32)


def _shape(img: FloatArray) -> FloatArray:
    u8 = (img * 255).astype(np.uint8)
    _t, mask = cv2.threshold(u8, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    frac = float(mask.mean())
    ys, xs = np.nonzero(mask)
    if len(xs) < 3:
        return np.zeros(9, np.float32)
    cx, cy = xs.mean() / SIZE, ys.mean() / SIZE
    cov = np.cov(np.stack([xs, ys]).astype(np.float64))
    evals = np.sort(np.linalg.eigvalsh(cov))
    elong = float(evals[0] / (evals[1] + 1e-6))
    theta = 0.5 * math.atan2(2 * cov[0, 1], cov[0, 0] - cov[1, 1])
    extent = frac * SIZE * SIZE / ((np.ptp(xs) + 1) * (np.ptp(ys) + 1))
    n, _labels = cv2.connectedComponents(mask.astype(np.uint8))
    edges = float((cv2.Canny(u8, 50, 150) > 0).mean())
    return np.array(
        [frac, cx, cy, elong, math.cos(2 * theta) * (1 - elong), extent,
         math.log(n), edges, float(img.std())],
        np.float32,
    )  # fmt: skip


@dataclass(frozen=True)
class SeriesFeatures:
    vector: FloatArray
    thumbnail: FloatArray  # the central slice, normalised, for a PNG

    def png(self, size: int = 128) -> bytes:
        return thumbnail_png(self.thumbnail, size)


def thumbnail_png(img: FloatArray, size: int = 128) -> bytes:
    h, w = img.shape
    scale = size / max(h, w)
    small = cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))),
                       interpolation=cv2.INTER_AREA)  # fmt: skip
    ok, buf = cv2.imencode(".png", (small * 255).astype(np.uint8))
    if not ok:
        raise ValueError("thumbnail could not be encoded")
    return io.BytesIO(buf.tobytes()).getvalue()


def _foreground_box(norm: FloatArray) -> FloatArray:
    """The image cropped to its foreground (Otsu) with a small margin.

    Crops, zoom and field of view then move the anatomy much less within the
    64x64 grid the thumbnail and HOG see; the field of view is a feature of its own.
    """
    h, w = norm.shape
    step = max(1, min(h, w) // 128)
    u8 = (norm[::step, ::step] * 255).astype(np.uint8)
    _t, mask = cv2.threshold(u8, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    ys, xs = np.nonzero(mask)
    if len(xs) < 16:
        return norm
    y0, y1 = np.percentile(ys, (1, 99)) * step
    x0, x1 = np.percentile(xs, (1, 99)) * step
    my, mx = 0.05 * (y1 - y0), 0.05 * (x1 - x0)
    top, bottom = max(0, int(y0 - my)), min(h, int(y1 + my) + 1)
    left, right = max(0, int(x0 - mx)), min(w, int(x1 + mx) + 1)
    if bottom - top < 8 or right - left < 8:
        return norm
    return norm[top:bottom, left:right]


def slice_features(img: FloatArray) -> FloatArray:
    """Features of one slice, the same for the slice and its mirror image.

    A left shoulder is a mirrored right one: laterality is the metadata layer's
    business, so the image layer must not call half of a batch outliers for it.
    """
    norm = _foreground_box(normalise(img))
    small = cv2.resize(norm, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    hist = np.histogram(small, bins=16, range=(0.0, 1.0))[0].astype(np.float32) / small.size
    halves = []
    for view in (small, np.ascontiguousarray(small[:, ::-1])):
        thumb = cv2.resize(view, (8, 8), interpolation=cv2.INTER_AREA).ravel()
        halves.append(np.concatenate([thumb, _hog(view), hist, _shape(view)]))
    return ((halves[0] + halves[1]) / 2).astype(np.float32)


def fov_mm(ds: Dataset, shape: tuple[int, ...]) -> tuple[float, float]:
    from trialpacs.qc.geometry import _floats, _functional

    spacing = _floats(_functional(ds, "PixelSpacing") or ds.get("ImagerPixelSpacing"))
    if len(spacing) != 2:
        return 0.0, 0.0
    return shape[-2] * spacing[0], shape[-1] * spacing[1]


def series_features(datasets: Sequence[Dataset]) -> SeriesFeatures:
    slices = central_slices(datasets)
    per = np.stack([slice_features(s) for s in slices]).mean(axis=0)
    ref = next(d for d in datasets if "PixelData" in d)
    fy, fx = fov_mm(ref, slices[0].shape)
    fov = np.array([math.log1p(max(fy, fx)), math.log1p(min(fy, fx))], np.float32)
    vector = np.concatenate([per, fov]).astype(np.float32)
    if vector.shape[0] != DIM:
        raise AssertionError(f"feature vector has {vector.shape[0]} values, expected {DIM}")
    return SeriesFeatures(vector, normalise(slices[len(slices) // 2]))
