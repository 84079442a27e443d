"""Turn one stored frame into the 8-bit RGB picture an OCR engine reads well.

OCR engines are trained on 8-bit photographs and scans. Medical frames are
12/16-bit, signed, MONOCHROME1 (inverted), YBR or palette-indexed, and their
text is often tiny. Each of these gets a fix here; the box coordinates found
on the result map back through ``OcrView.scale``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset

__all__ = ["OcrView", "PreprocessOptions", "frame_to_views", "to_display_rgb"]


@dataclass(frozen=True)
class PreprocessOptions:
    """How frames are prepared for OCR.

    ``low_percentile`` sets the black point of the window; the white point
    is always the frame maximum because burned-in text is usually drawn at
    the brightest value and must not be clipped into the anatomy.
    ``upscale_below``: frames whose shorter side is smaller are enlarged
    (small text on small frames is where detectors fail first).
    ``invert``: also offer the inverted picture (dark text on light), which
    Tesseract needs and which helps detectors on light backgrounds.
    """

    low_percentile: float = 1.0
    upscale_below: int = 0
    max_upscale: float = 3.0
    invert: bool = False
    extra_window: bool = False


@dataclass(frozen=True)
class OcrView:
    """One 8-bit RGB picture of a frame; ``scale`` = view pixels per stored pixel."""

    image: NDArray[np.uint8]
    scale: float
    name: str


def _window_to_uint8(gray: NDArray[np.floating], lo: float, hi: float) -> NDArray[np.uint8]:
    if hi <= lo:
        return np.zeros(gray.shape, dtype=np.uint8)
    out = (gray - lo) * (255.0 / (hi - lo))
    return np.clip(out, 0, 255).astype(np.uint8)


def _palette_rgb(frame: NDArray[np.generic], ds: Dataset | None) -> NDArray[np.generic]:
    from pydicom.pixels import apply_color_lut

    if ds is None:
        raise ValueError("PALETTE COLOR frames need the dataset for their lookup tables")
    return np.asarray(apply_color_lut(frame, ds))


def to_display_rgb(
    frame: NDArray[np.generic],
    photometric: str,
    *,
    ds: Dataset | None = None,
    low_percentile: float = 1.0,
) -> NDArray[np.uint8]:
    """The frame as a person would roughly see it, as 8-bit RGB."""
    from pydicom.pixels import convert_color_space

    if photometric in ("MONOCHROME1", "MONOCHROME2"):
        gray = frame.astype(np.float32)
        lo = float(np.percentile(gray, low_percentile)) if low_percentile > 0 else float(gray.min())
        hi = float(gray.max())
        u8 = _window_to_uint8(gray, lo, hi)
        if photometric == "MONOCHROME1":
            u8 = 255 - u8
        return np.repeat(u8[:, :, np.newaxis], 3, axis=2)
    if photometric == "PALETTE COLOR":
        rgb = _palette_rgb(frame, ds)
    elif photometric.startswith("YBR_FULL"):
        rgb = convert_color_space(np.asarray(frame), "YBR_FULL", "RGB")
    else:
        rgb = np.asarray(frame)
    if rgb.dtype != np.uint8:
        rgbf = rgb.astype(np.float32)
        rgb = _window_to_uint8(rgbf, float(rgbf.min()), float(rgbf.max()))
    return np.ascontiguousarray(rgb, dtype=np.uint8)


def frame_to_views(
    frame: NDArray[np.generic],
    photometric: str,
    options: PreprocessOptions,
    *,
    ds: Dataset | None = None,
) -> list[OcrView]:
    """The pictures to run detection on for one frame (usually one)."""
    base = to_display_rgb(frame, photometric, ds=ds, low_percentile=options.low_percentile)
    pictures: list[tuple[str, NDArray[np.uint8]]] = [("window", base)]
    if options.extra_window and photometric in ("MONOCHROME1", "MONOCHROME2"):
        # A second, min-max window: grey text over bright anatomy stands out
        # better when nothing is clipped at the low end.
        gray = frame.astype(np.float32)
        u8 = _window_to_uint8(gray, float(gray.min()), float(gray.max()))
        if photometric == "MONOCHROME1":
            u8 = 255 - u8
        pictures.append(("minmax", np.repeat(u8[:, :, np.newaxis], 3, axis=2).astype(np.uint8)))
    if options.invert:
        pictures += [(f"{n}-inverted", (255 - p).astype(np.uint8)) for n, p in pictures]
    scale = 1.0
    short = min(base.shape[0], base.shape[1])
    if options.upscale_below and short < options.upscale_below:
        scale = min(options.max_upscale, options.upscale_below / short)
    views = []
    for name, pic in pictures:
        if scale != 1.0:
            pic = np.asarray(
                cv2.resize(
                    pic,
                    (round(pic.shape[1] * scale), round(pic.shape[0] * scale)),
                    interpolation=cv2.INTER_CUBIC,
                ),
                dtype=np.uint8,
            )
        views.append(OcrView(np.ascontiguousarray(pic), scale, name))
    return views
