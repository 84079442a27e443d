"""What the acquisition geometry says: field of view, imaging plane, coverage, laterality.

Geometry survives de-identification (orientation, spacing and positions are
kept), and it is hard to get wrong by typing: a 400 mm field of view is not a
shoulder, whatever the description says.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from pydicom.dataset import Dataset

from trialpacs.qc.anatomy import Region, ancestors

# Plausible largest in-plane field of view (mm) of a diagnostic series, by region;
# the nearest region up the hierarchy that has a range applies.
FOV_MM: dict[str, tuple[float, float]] = {
    "Head": (120, 300), "Neck": (120, 320), "Shoulder": (100, 260), "ElbowJoint": (60, 200),
    "WristJoint": (40, 160), "Hand": (40, 260), "Knee": (90, 240), "AnkleJoint": (60, 220),
    "Foot": (60, 300), "Hip": (150, 450), "Prostate": (100, 450), "Pelvis": (150, 500),
    "Abdomen": (220, 520), "Chest": (220, 520), "Breast": (150, 450), "Spine": (150, 480),
    "Extremity": (40, 500),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Geometry:
    fov_mm: float | None  # largest in-plane extent
    plane: str  # AX, COR, SAG, or "" when there is no orientation
    oblique: bool
    coverage_mm: float | None  # extent along the slice normal
    slices: int
    laterality: str  # from (0020,0060)/(0020,0062): R, L or ""
    localizer: bool


def _floats(value: object) -> list[float]:
    try:
        return [float(v) for v in value]  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return []


def _functional(ds: Dataset, keyword: str) -> object:
    """An attribute of a multi-frame image, looked up in its shared functional groups."""
    value = ds.get(keyword)
    if value is not None:
        return value
    for seq_kw, item_kw in (
        ("PixelMeasuresSequence", keyword),
        ("PlaneOrientationSequence", keyword),
    ):
        for group in ds.get("SharedFunctionalGroupsSequence", []) or []:
            for item in group.get(seq_kw, []) or []:
                if item.get(item_kw) is not None:
                    return item.get(item_kw)
    return None


def plane_of(orientation: Sequence[float]) -> tuple[str, bool]:
    if len(orientation) != 6:
        return "", False
    r, c = orientation[:3], orientation[3:]
    n = (r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0])
    axis = max(range(3), key=lambda i: abs(n[i]))
    return ("SAG", "COR", "AX")[axis], abs(n[axis]) < 0.9


def read(headers: Sequence[Dataset]) -> Geometry:
    first = headers[0]
    spacing = _floats(_functional(first, "PixelSpacing") or first.get("ImagerPixelSpacing"))
    rows, cols = int(first.get("Rows", 0) or 0), int(first.get("Columns", 0) or 0)
    fov = max(rows * spacing[0], cols * spacing[1]) if len(spacing) == 2 and rows else None
    plane, oblique = plane_of(_floats(_functional(first, "ImageOrientationPatient")))
    frames = int(first.get("NumberOfFrames", 1) or 1)
    positions = [_floats(h.get("ImagePositionPatient")) for h in headers]
    positions = [p for p in positions if len(p) == 3]
    coverage = None
    if len(positions) > 1:
        coverage = max(math.dist(positions[0], p) for p in positions)
    lat = str(first.get("Laterality", "") or first.get("ImageLaterality", "") or "").upper()
    image_type = [str(v).upper() for v in (first.get("ImageType") or [])]
    text = " ".join(
        str(first.get(k, "") or "") for k in ("SeriesDescription", "ProtocolName")
    ).upper()
    localizer = "LOCALIZER" in image_type or any(
        w in text for w in ("LOCALI", "SCOUT", "SURVEY", "3-PLANE", "3PLANE", "TRI-PLANE")
    )
    return Geometry(
        fov_mm=fov,
        plane=plane,
        oblique=oblique,
        coverage_mm=coverage,
        slices=max(len(headers), frames),
        laterality=lat if lat in ("R", "L") else "",
        localizer=localizer,
    )


def fov_range(region: Region) -> tuple[str, tuple[float, float]] | None:
    """The range of the region or of its nearest container that has one."""
    if region.keyword in FOV_MM:
        return region.keyword, FOV_MM[region.keyword]
    for kw in sorted(ancestors(region.keyword) - {region.keyword}):
        if kw in FOV_MM and kw != "Extremity":
            return kw, FOV_MM[kw]
    return None


def fov_conflict(geometry: Geometry, wanted: Region) -> str:
    """A reason when the field of view cannot show ``wanted``; "" when plausible or unknown."""
    if geometry.fov_mm is None or geometry.localizer:
        return ""
    found = fov_range(wanted)
    if found is None:
        return ""
    _kw, (low, high) = found
    if geometry.fov_mm < low * 0.8 or geometry.fov_mm > high * 1.25:
        return (
            f"field of view {geometry.fov_mm:.0f} mm is outside {low:.0f}-{high:.0f} mm "
            f"expected for {wanted.meaning.lower()}"
        )
    return ""
