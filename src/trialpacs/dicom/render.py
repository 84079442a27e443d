"""Rendered (consumer format) images for WADO-RS rendered/thumbnail and WADO-URI.

Windowing follows the stored VOI unless the client gives one; a degenerate
stored window (width 0, as in some test series) falls back to the data's own
range, so images are never rendered black.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut

from trialpacs.dicom.frames import check_numbers, frame_count
from trialpacs.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class RenderOptions:
    media_type: str = "image/jpeg"
    window: tuple[float, float, str] | None = None  # center, width, function
    viewport: tuple[int, int] | None = None
    quality: int = 90

    def __post_init__(self) -> None:
        if self.media_type not in ("image/jpeg", "image/png", "image/gif"):
            raise InvalidInput(f"cannot render as {self.media_type}; use image/jpeg or image/png")
        if not 1 <= self.quality <= 100:
            raise InvalidInput("quality must be between 1 and 100")
        if self.viewport and (min(self.viewport) < 1 or max(self.viewport) > 8192):
            raise InvalidInput("viewport must be between 1 and 8192 pixels per side")
        if self.window and self.window[1] <= 0:
            raise InvalidInput("window width must be positive")


def parse_window(raw: str | None) -> tuple[float, float, str] | None:
    if not raw:
        return None
    parts = raw.split(",")
    if len(parts) not in (2, 3):
        raise InvalidInput("window must be center,width[,function]")
    try:
        center, width = float(parts[0]), float(parts[1])
    except ValueError:
        raise InvalidInput(f"window values must be numbers, got {raw!r}") from None
    function = parts[2].strip().lower() if len(parts) == 3 else "linear"
    if function not in ("linear", "linear-exact", "sigmoid"):
        raise InvalidInput(f"unknown window function {function!r}")
    return center, width, function


def parse_viewport(raw: str | None) -> tuple[int, int] | None:
    if not raw:
        return None
    parts = raw.split(",")
    try:
        vw, vh = int(parts[0]), int(parts[1]) if len(parts) > 1 else int(parts[0])
    except (ValueError, IndexError):
        raise InvalidInput(f"viewport must be width,height, got {raw!r}") from None
    return vw, vh


def render(ds: Dataset, frame: int, options: RenderOptions) -> bytes:
    check_numbers(ds, [frame])
    try:
        arr = ds.pixel_array
    except Exception as exc:
        raise InvalidInput(f"cannot decode pixel data: {exc}") from exc
    if frame_count(ds) > 1:
        arr = arr[frame - 1]
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        image = _color(ds, arr, photometric)
    else:
        image = Image.fromarray(_grey(ds, arr, photometric, options.window), mode="L")
    return encode(image, options)


def encode(image: Image.Image, options: RenderOptions) -> bytes:
    """The image scaled to the viewport and encoded as asked (also for video frames)."""
    if options.viewport:
        image.thumbnail(options.viewport, Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    if options.media_type == "image/png":
        image.save(buf, format="PNG")
    elif options.media_type == "image/gif":
        image.save(buf, format="GIF")
    else:
        image.convert("RGB" if image.mode not in ("L", "RGB") else image.mode).save(
            buf, format="JPEG", quality=options.quality
        )
    return buf.getvalue()


def _color(ds: Dataset, arr: np.ndarray, photometric: str) -> Image.Image:
    if photometric.startswith("YBR") and photometric != "YBR_FULL_422":
        from pydicom.pixels import convert_color_space

        arr = convert_color_space(arr, photometric, "RGB")
    if arr.dtype != np.uint8:
        arr = (arr.astype(np.float64) / max(float(arr.max()), 1.0) * 255).astype(np.uint8)
    return Image.fromarray(arr[..., :3], mode="RGB")


def _grey(
    ds: Dataset, arr: np.ndarray, photometric: str, window: tuple[float, float, str] | None
) -> np.ndarray:
    values = apply_modality_lut(arr, ds).astype(np.float64)
    center, width = _window(ds, values, window)
    low = center - 0.5 - (width - 1) / 2
    high = center - 0.5 + (width - 1) / 2
    out = np.clip((values - low) / max(high - low, 1e-6), 0, 1) * 255
    if photometric == "MONOCHROME1":
        out = 255 - out
    return out.astype(np.uint8)


def _window(
    ds: Dataset, values: np.ndarray, window: tuple[float, float, str] | None
) -> tuple[float, float]:
    if window:
        return window[0], window[1]
    try:
        center = ds.get("WindowCenter")
        width = ds.get("WindowWidth")
        if center is not None and width is not None:
            c = float(center[0] if _multi(center) else center)
            w = float(width[0] if _multi(width) else width)
            if w > 1:
                return c, w
    except (TypeError, ValueError):
        pass
    low, high = float(np.min(values)), float(np.max(values))
    return (low + high) / 2, max(high - low, 1.0)


def _multi(value: object) -> bool:
    return type(value).__name__ == "MultiValue" or isinstance(value, list)
