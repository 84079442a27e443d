"""The OCR of the pixel de-identification (deid.pixels), shared by PDF images and videos."""

from __future__ import annotations

import threading

import numpy as np
from numpy.typing import NDArray

from trialpacs.deid.pixels import RapidOcrEngine
from trialpacs.deid.pixels.ocr import OcrEngine

Box = tuple[int, int, int, int]
_LOCK = threading.Lock()
_ENGINE: OcrEngine | None = None


def engine() -> OcrEngine:
    """One engine per process (models load once; onnxruntime sessions are thread-safe)."""
    global _ENGINE
    with _LOCK:
        if _ENGINE is None:
            _ENGINE = RapidOcrEngine()
        return _ENGINE


def detect(image: NDArray[np.uint8]) -> list[Box]:
    """Text boxes of an RGB image (detection only: what mask-all-text needs)."""
    return [
        (r.x0, r.y0, r.x1, r.y1) for r in engine().detect(image) if r.width > 0 and r.height > 0
    ]


def read_lines(image: NDArray[np.uint8]) -> list[tuple[Box, str]]:
    """Text boxes with their recognised text (what masking only PHI needs)."""
    eng = engine()
    regions = [r for r in eng.detect(image) if r.width > 0 and r.height > 0]
    return [((r.x0, r.y0, r.x1, r.y1), r.text or "") for r in eng.recognize(image, regions)]
