"""DICOM JSON (PS3.18 Annex F) for metadata responses.

Large binary values become BulkDataURIs pointing at our bulkdata route. The
base URL is not known at ingest time, so URIs are written with the
placeholder :data:`BASE_PLACEHOLDER` and swapped for the request's base URL
when served (a byte replace, no JSON parsing on the hot path).
"""

from __future__ import annotations

from typing import Any

import orjson
from pydicom.dataset import Dataset

from trialpacs.dicom import fastjson

BASE_PLACEHOLDER = "@@TRIALPACS_BASE@@"
BULK_THRESHOLD = 1024


def instance_path(study: str, series: str, sop: str) -> str:
    return f"/studies/{study}/series/{series}/instances/{sop}"


def dataset_to_json(ds: Dataset, study: str, series: str, sop: str) -> dict[str, Any]:
    """The instance's DICOM JSON with bulk data replaced by URIs.

    Only top-level bulk elements get URIs (pixel data always, other binary
    values above 1 KiB); nested binary values are small in practice and are
    inlined, which keeps the bulkdata route to one tag.
    """
    base = BASE_PLACEHOLDER + instance_path(study, series, sop)

    def bulk(tag: int, vr: str, value: bytes) -> str | None:
        if tag == 0x7FE00010 or len(value) > BULK_THRESHOLD:
            return f"{base}/bulkdata/{tag:08X}"
        return None

    attrs = fastjson.encode(ds, bulk)
    _fix_degenerate_window(ds, attrs)
    return attrs


def _fix_degenerate_window(ds: Dataset, attrs: dict[str, Any]) -> None:
    """Replace a stored window of width <= 1 with the pixel range, for viewers.

    Some files carry WindowCenter=0/WindowWidth=0; OHIF then shows them black.
    Only the served metadata changes; the stored instance keeps its bytes.
    """
    width = attrs.get("00281051", {}).get("Value")
    if not width or not isinstance(width[0], int | float) or width[0] > 1:
        return
    try:
        import numpy as np
        from pydicom.pixels import apply_modality_lut

        values = apply_modality_lut(ds.pixel_array, ds)
        low, high = float(np.min(values)), float(np.max(values))
    except Exception:
        return
    if high <= low:
        return
    attrs["00281050"] = {"vr": "DS", "Value": [round((low + high) / 2, 4)]}
    attrs["00281051"] = {"vr": "DS", "Value": [round(high - low, 4)]}


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def value(attrs: dict[str, Any], tag: str) -> Any:
    """First value of ``tag`` in a DICOM JSON object, or None."""
    entry = attrs.get(tag)
    if not entry:
        return None
    values = entry.get("Value")
    if not values:
        return None
    return values[0]
