"""Clean Pixel Data: find text burned into the pixels and mask it.

The header engine calls :func:`default_cleaner` (or builds an
:class:`OcrPixelCleaner` itself) and uses it through the
:class:`trialpacs.deid.pixel_hook.PixelCleaner` protocol. See
``docs/pixels.md`` for the policies, scan rules, layouts and evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from trialpacs.settings import DEFAULT_MAX_FRAMES

from .cleaner import FramePlan, OcrPixelCleaner
from .graphics import clean_graphics
from .layouts import LayoutRules, default_layout_rules, load_layout_rules
from .ocr import OcrEngine, OcrError, RapidOcrEngine, TesseractEngine, TextRegion
from .policy import POLICIES, make_policy
from .preprocess import PreprocessOptions
from .scan import ScanRules

__all__ = [
    "POLICIES",
    "FramePlan",
    "LayoutRules",
    "OcrEngine",
    "OcrError",
    "OcrPixelCleaner",
    "PreprocessOptions",
    "RapidOcrEngine",
    "ScanRules",
    "TesseractEngine",
    "TextRegion",
    "clean_graphics",
    "default_cleaner",
    "default_layout_rules",
    "load_layout_rules",
]


def default_cleaner(
    policy: str = "mask-all-text",
    *,
    engine: str | OcrEngine = "rapidocr",
    scan: ScanRules | None = None,
    extra_layouts: str | Path | None = None,
    allow_patterns: Sequence[str] = (),
    frames: str = "sample",
    timeout_s: float | None = 120.0,
    ner: Callable[[str], bool] | None = None,
    max_frames: int | None = DEFAULT_MAX_FRAMES,
) -> OcrPixelCleaner:
    """A ready cleaner for the engine and CLI: rapidocr, shipped layouts, risk-based scanning.

    ``policy`` is ``"mask-all-text"`` (the trial profile's default) or
    ``"mask-phi"``; ``extra_layouts`` is a trial's own rules file, added to
    the shipped rules; ``frames`` is ``"sample"`` or ``"all"`` (see FramePlan);
    ``max_frames`` is the ingest limit (setting ``max_frames``): an instance
    with more frames is refused, never OCR'd.
    """
    if isinstance(engine, str):
        if engine == "rapidocr":
            ocr: OcrEngine = RapidOcrEngine()
        elif engine == "tesseract":
            ocr = TesseractEngine()
        else:
            raise ValueError(f"unknown OCR engine {engine!r}; expected rapidocr or tesseract")
    else:
        ocr = engine
    layouts = default_layout_rules()
    if extra_layouts is not None:
        layouts = layouts.extended(load_layout_rules(extra_layouts).rules)
    preprocess = PreprocessOptions(invert=ocr.name == "tesseract")
    return OcrPixelCleaner(
        policy=make_policy(policy, allow_patterns=allow_patterns),
        scan_rules=scan or ScanRules(),
        layout_rules=layouts,
        engine=ocr,
        preprocess=preprocess,
        frame_plan=FramePlan(mode=frames),
        timeout_s=timeout_s,
        ner=ner,
        max_frames=max_frames,
    )
