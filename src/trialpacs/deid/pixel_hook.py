"""The Clean Pixel Data hook: what the engine expects from a pixel cleaner.

OCR masking lives elsewhere (``trialpacs.deid.pixels``); the engine only
knows this protocol, so header de-identification stays fast and testable
without OCR, and the cleaner can be swapped per deployment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from pydicom.dataset import Dataset

if TYPE_CHECKING:
    from trialpacs.deid.profile import Profile


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


def pixel_cleaner_for(
    profile: Profile, policy: str | None = None, *, max_frames: int | None = None
) -> PixelCleaner | None:
    """The OCR cleaner a profile asks for (None without Clean Pixel Data).

    ``policy`` overrides the profile's ``pixel_policy``. Which instances are
    OCR-scanned is the cleaner's risk decision (``ScanRules``): ordinary
    CT/MR are not. The OCR models load on the first scan, not here.
    ``max_frames``: the deployment's ingest limit (None: the default), so a
    site that raised it for whole-slide images can still have them cleaned.
    """
    from trialpacs.deid.table import Option

    if not profile.has(Option.CLEAN_PIXEL_DATA):
        return None
    from trialpacs.deid.pixels import default_cleaner
    from trialpacs.settings import DEFAULT_MAX_FRAMES

    return default_cleaner(
        policy or profile.pixel_policy,
        max_frames=DEFAULT_MAX_FRAMES if max_frames is None else max_frames,
    )
