"""The Clean Graphics option: overlays, curves and graphic annotations.

Overlay planes (groups 60xx) and graphic annotations are drawn on top of the
image by viewers and often carry names and dates; they are not pixels, so
OCR on Pixel Data never sees them. Removing them is the conservative choice
(PS3.15 E.3.3 allows removal or cleaning).
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

__all__ = ["clean_graphics"]

_GRAPHIC_KEYWORDS = (
    "GraphicAnnotationSequence",
    "GraphicLayerSequence",
    "TextObjectSequence",
    "GraphicObjectSequence",
)


def _is_overlay_or_curve(tag: BaseTag) -> bool:
    group = tag.group
    # Repeating groups 6000-601E (overlays) and 5000-501E (retired curves), even only.
    return (0x6000 <= group <= 0x601E or 0x5000 <= group <= 0x501E) and group % 2 == 0


def clean_graphics(ds: Dataset) -> list[str]:
    """Remove overlays, curves and graphic annotations from ``ds`` in place.

    Returns a description of what was removed (for the report), e.g.
    ``["overlay group 6000", "GraphicAnnotationSequence"]``.
    """
    removed: list[str] = []
    # Tags only: iterating the data set itself would decode every raw element.
    tags = [BaseTag(t) for t in ds.keys()]  # noqa: SIM118 (a Dataset iterates elements)
    groups = sorted({t.group for t in tags if _is_overlay_or_curve(t)})
    for group in groups:
        for tag in [t for t in tags if t.group == group]:
            del ds[tag]
        kind = "overlay" if group >= 0x6000 else "curve"
        removed.append(f"{kind} group {group:04X}")
    for keyword in _GRAPHIC_KEYWORDS:
        if keyword in ds:
            delattr(ds, keyword)
            removed.append(keyword)
    return removed
