"""A fast DICOM JSON encoder for the ingest hot path.

pydicom's ``to_json_dict`` converts every raw element to a DataElement first
and costs about 10 ms for a CT header with many private tags; this encoder
decodes raw bytes directly for the common VRs (text, numbers, binary) and
hands anything unusual (sequences, ambiguous or UN VRs, other character
sets, malformed numbers) to pydicom, so the output is the same either way.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable
from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

TEXT_MULTI = frozenset({"AE", "AS", "CS", "DA", "DT", "LO", "SH", "TM", "UI", "UC"})
TEXT_SINGLE = frozenset({"LT", "ST", "UT", "UR"})
NUMERIC = {
    "US": "H",
    "SS": "h",
    "UL": "I",
    "SL": "i",
    "FL": "f",
    "FD": "d",
    "UV": "Q",
    "SV": "q",
}
BINARY = frozenset({"OB", "OD", "OF", "OL", "OV", "OW"})
# Character sets whose bytes decode as latin-1 for the VRs we handle here.
SIMPLE_CHARSETS = frozenset({"", "ISO_IR 6", "ISO_IR 100", "ISO 2022 IR 6"})

BulkHandler = Callable[[int, str, bytes], str | None]


def encode(ds: Dataset, bulk: BulkHandler, *, skip_group2: bool = True) -> dict[str, Any]:
    """DICOM JSON of ``ds``; ``bulk(tag, vr, value)`` returns a BulkDataURI or None to inline."""
    charset = ds._dict.get(0x00080005)  # type: ignore[call-overload]
    simple = charset is None or _charset_text(charset) in SIMPLE_CHARSETS
    out: dict[str, Any] = {}
    for tag in sorted(ds._dict):
        tag_int = int(tag)
        if skip_group2 and tag_int >> 16 == 0x0002:
            continue
        raw = ds._dict[tag]
        key = f"{tag_int:08X}"
        entry = None
        if simple and isinstance(raw, RawDataElement):
            entry = _fast(raw, tag_int, bulk)
        if entry is None:
            entry = _slow(ds, tag_int, bulk)
        out[key] = entry
    return out


def _charset_text(elem: Any) -> str:
    value = elem.value
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if isinstance(value, str):
        return value.strip("\x00 ").split("\\")[0].strip()
    return str(value[0]) if value else ""


def _vr_of(raw: RawDataElement, tag: int) -> str | None:
    vr = raw.VR
    if vr:
        return str(vr)
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return None


def _fast(raw: RawDataElement, tag: int, bulk: BulkHandler) -> dict[str, Any] | None:
    vr = _vr_of(raw, tag)
    if vr is None or " or " in vr or vr in ("SQ", "UN"):
        return None
    value: bytes = raw.value or b""
    if not value:
        return {"vr": vr}
    try:
        if vr in TEXT_MULTI:
            text = value.decode("latin-1").rstrip("\x00 ")
            if not text:
                return {"vr": vr}
            parts = [p.strip(" ") if vr != "UC" else p.rstrip(" ") for p in text.split("\\")]
            return {"vr": vr, "Value": [p if p else None for p in parts]}
        if vr in TEXT_SINGLE:
            text = value.decode("latin-1").rstrip("\x00 ")
            return {"vr": vr, "Value": [text]} if text else {"vr": vr}
        if vr == "PN":
            text = value.decode("latin-1").rstrip("\x00 ")
            if not text:
                return {"vr": vr}
            return {"vr": vr, "Value": [_pn(p) for p in text.split("\\")]}
        if vr == "IS":
            parts = value.decode("latin-1").rstrip("\x00 ").split("\\")
            return {"vr": vr, "Value": [int(p) if p.strip() else None for p in parts]}
        if vr == "DS":
            parts = value.decode("latin-1").rstrip("\x00 ").split("\\")
            return {"vr": vr, "Value": [float(p) if p.strip() else None for p in parts]}
        if vr in NUMERIC:
            code = NUMERIC[vr]
            size = struct.calcsize(code)
            if len(value) % size:
                return None
            endian = "<" if raw.is_little_endian else ">"
            numbers = struct.unpack(f"{endian}{len(value) // size}{code}", value)
            return {"vr": vr, "Value": list(numbers)}
        if vr == "AT":
            endian = "<" if raw.is_little_endian else ">"
            if len(value) % 4:
                return None
            pairs = struct.unpack(f"{endian}{len(value) // 2}H", value)
            return {
                "vr": vr,
                "Value": [f"{pairs[i]:04X}{pairs[i + 1]:04X}" for i in range(0, len(pairs), 2)],
            }
        if vr in BINARY:
            if not raw.is_little_endian:
                return None
            uri = bulk(tag, vr, value)
            if uri is not None:
                return {"vr": vr, "BulkDataURI": uri}
            return {"vr": vr, "InlineBinary": base64.b64encode(value).decode()}
    except (ValueError, UnicodeDecodeError, struct.error):
        return None
    return None


def _pn(value: str) -> dict[str, str]:
    groups = value.split("=")
    out = {}
    for name, group in zip(("Alphabetic", "Ideographic", "Phonetic"), groups, strict=False):
        if group:
            out[name] = group
    return out


def _slow(ds: Dataset, tag: int, bulk: BulkHandler) -> dict[str, Any]:
    try:
        elem = ds[tag]
        if elem.VR in BINARY or elem.VR == "UN":
            value = elem.value
            if isinstance(value, bytes | bytearray) and value:
                uri = bulk(tag, elem.VR, bytes(value))
                if uri is not None:
                    return {"vr": elem.VR, "BulkDataURI": uri}
        result: dict[str, Any] = elem.to_json_dict(None, 1 << 62)
        return result
    except Exception:
        # A value pydicom cannot render (bad VR content) is served empty rather
        # than failing the whole study's metadata.
        try:
            vr = str(ds._dict[tag].VR or "UN")  # type: ignore[index]
        except Exception:
            vr = "UN"
        return {"vr": vr}
