"""DICOM JSON (PS3.18 Annex F) for metadata responses.

Large binary values become BulkDataURIs pointing at our bulkdata route. The
base URL is not known at ingest time, so URIs are written with the
placeholder :data:`BASE_PLACEHOLDER` and swapped for the request's base URL
when served (a byte replace, no JSON parsing on the hot path).
"""

from __future__ import annotations

from typing import Any

import orjson
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

BASE_PLACEHOLDER = "@@TRIALPACS_BASE@@"
BULK_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
BULK_THRESHOLD = 1024


def instance_path(study: str, series: str, sop: str) -> str:
    return f"/studies/{study}/series/{series}/instances/{sop}"


def dataset_to_json(ds: Dataset, study: str, series: str, sop: str) -> dict[str, Any]:
    """The instance's DICOM JSON with bulk data replaced by URIs.

    Only top-level bulk elements get URIs; nested binary values are small in
    practice (icons excepted) and are inlined, which keeps the bulkdata route
    to one tag.
    """
    base = BASE_PLACEHOLDER + instance_path(study, series, sop)
    out: dict[str, Any] = {}
    for elem in ds:
        tag = int(elem.tag)
        if tag >> 16 == 0x0002:
            continue
        key = f"{tag:08X}"
        try:
            if elem.VR in BULK_VRS and _bulk(elem):
                out[key] = {"vr": elem.VR, "BulkDataURI": f"{base}/bulkdata/{key}"}
            else:
                out[key] = elem.to_json_dict(None, 1 << 62)
        except Exception:
            # A value pydicom cannot render (bad VR content) is served as empty
            # rather than failing the whole study's metadata.
            out[key] = {"vr": elem.VR}
    return out


def _bulk(elem: DataElement) -> bool:
    if int(elem.tag) == 0x7FE00010:
        return True
    value = elem.value
    return (
        value is not None and isinstance(value, bytes | bytearray) and len(value) > BULK_THRESHOLD
    )


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
