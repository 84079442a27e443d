"""The Clean Pixel Data hook: what the engine expects from a pixel cleaner.

OCR masking lives elsewhere (``trialpacs.deid.pixels``); the engine only
knows this protocol, so header de-identification stays fast and testable
without OCR, and the cleaner can be swapped per deployment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from pydicom.dataset import Dataset


@dataclass
class MaskedBox:
    frame: int
    x: int
    y: int
    width: int
    height: int
    text_sha256: str | None
    reason: str


@dataclass
class PixelCleanReport:
    scanned: bool
    reason: str
    boxes: list[MaskedBox] = field(default_factory=list)
    modified: bool = False


class PixelCleanError(Exception):
    """The cleaner could not check the pixels: the instance must not be released."""


@runtime_checkable
class PixelCleaner(Protocol):
    def clean(self, ds: Dataset, phi_terms: Sequence[str]) -> PixelCleanReport: ...


class NoPixelCleaner:
    """Used when the profile asks for Clean Pixel Data but none is configured."""

    def clean(self, ds: Dataset, phi_terms: Sequence[str]) -> PixelCleanReport:
        return PixelCleanReport(scanned=False, reason="no pixel cleaner configured")
