"""Encode a de-identified dataset as Part 10, copying untouched elements as raw bytes.

pydicom's writer spends most of its time in per-element bookkeeping even for
elements it copies verbatim; most of a de-identified header is exactly that.
Here raw elements are copied with a hand-made header, and only the elements
the engine created go through pydicom's element writer. Anything unusual
(big endian, deflate, an encoding mismatch) falls back to pydicom entirely,
and the tests check both paths give the same bytes.
"""

from __future__ import annotations

import struct
from typing import Any

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID

from trialpacs.dicom.parse import PREAMBLE, write_part10

_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT"})
_SEQ_DELIM = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
_IMPL_VERSION = b"TRIALPACS_DEID"  # even length, SH


def _meta_element(tag: int, vr: bytes, value: bytes) -> bytes:
    if len(value) % 2:
        value += b"\x00" if vr == b"UI" else b" "
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr
    if vr in _LONG_VRS:
        return head + b"\x00\x00" + struct.pack("<I", len(value)) + value
    return head + struct.pack("<H", len(value)) + value


def _meta(sop_class: str, sop_instance: str, ts: str) -> bytes:
    body = b"".join(
        (
            _meta_element(0x00020001, b"OB", b"\x00\x01"),
            _meta_element(0x00020002, b"UI", sop_class.encode()),
            _meta_element(0x00020003, b"UI", sop_instance.encode()),
            _meta_element(0x00020010, b"UI", ts.encode()),
            _meta_element(0x00020012, b"UI", str(PYDICOM_IMPLEMENTATION_UID).encode()),
            _meta_element(0x00020013, b"SH", _IMPL_VERSION),
        )
    )
    return _meta_element(0x00020000, b"UL", struct.pack("<I", len(body))) + body


# Character sets whose Python codec encodes every value the same way pydicom does.
_CODECS = {"iso8859": "latin-1", "latin_1": "latin-1", "UTF8": "utf-8", "utf_8": "utf-8"}
_STRING_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DT", "LO", "LT", "SH", "ST", "TM", "UC", "UI", "UR", "UT", "PN"}
)


def _text_bytes(vr: str, value: Any, codec: str) -> bytes | None:
    """Encode a plain string value like pydicom does, or None to let pydicom do it."""
    if vr not in _STRING_VRS:
        return None
    if value is None:
        values: list[str] = []
    elif isinstance(value, str):
        values = [value]
    elif isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        values = [str(v) for v in value]
    elif vr == "PN":
        values = [str(value)]
    else:
        return None
    if vr == "PN" and any("=" in v for v in values):
        return None  # component groups may carry other character sets
    data = "\\".join(values).encode(
        codec if vr in ("LO", "LT", "SH", "ST", "UC", "UT", "PN") else "ascii"
    )
    if len(data) % 2:
        data += b"\x00" if vr == "UI" else b" "
    return data


def _uid(ds: Dataset, tag: int) -> str:
    elem = ds._dict[tag]  # type: ignore[index]
    if isinstance(elem, RawDataElement) and isinstance(elem.value, bytes):
        return elem.value.decode("ascii", "replace").strip("\x00 ")
    return str(ds[tag].value)


def encode_part10(ds: Dataset, transfer_syntax: str) -> bytes:
    """Part 10 bytes with a zero preamble and a fresh meta header."""
    d: dict[Any, Any] = ds._dict  # type: ignore[assignment]
    # Command (0000) and file meta (0002) elements have no place in a stored
    # data set (PS3.10 7.1; the meta header is rebuilt below): never written.
    for tag in [t for t in d if (t >> 16) in (0x0000, 0x0002)]:
        del d[tag]
    ts = UID(transfer_syntax)
    implicit = ts.is_implicit_VR
    if (
        not ts.is_little_endian
        or ts.is_deflated
        or getattr(ds, "original_encoding", (None, None)) != (implicit, True)
    ):
        return write_part10(ds, transfer_syntax)
    encodings = ds._character_set
    names = [encodings] if isinstance(encodings, str) else list(encodings)
    codec = _CODECS.get(names[0]) if len(names) == 1 else None
    parts = [PREAMBLE, b"DICM", _meta(_uid(ds, 0x00080016), _uid(ds, 0x00080018), str(ts))]
    for tag in sorted(d, key=int):
        if (tag & 0xFFFF) == 0 and (tag >> 16) > 6:
            continue  # retired group lengths are not written (as pydicom does)
        elem = d[tag]
        if isinstance(elem, RawDataElement) and elem.value is not None:
            value = elem.value
            undefined = elem.length == 0xFFFFFFFF
            length = 0xFFFFFFFF if undefined else len(value)
            head = struct.pack("<HH", tag >> 16, tag & 0xFFFF)
            if implicit:
                head += struct.pack("<I", length)
            else:
                vr = (elem.VR or "UN").encode()
                if vr in _LONG_VRS:
                    head += vr + b"\x00\x00" + struct.pack("<I", length)
                elif length > 0xFFFF:
                    return write_part10(ds, transfer_syntax)
                else:
                    head += vr + struct.pack("<H", length)
            parts.append(head)
            parts.append(value)
            if undefined:
                parts.append(_SEQ_DELIM)
            continue
        converted = ds[tag]
        text = _text_bytes(converted.VR, converted.value, codec) if codec else None
        if text is not None:
            head = struct.pack("<HH", tag >> 16, tag & 0xFFFF)
            if implicit:
                head += struct.pack("<I", len(text))
            else:
                vr = converted.VR.encode()
                if vr in _LONG_VRS:
                    head += vr + b"\x00\x00" + struct.pack("<I", len(text))
                else:
                    head += vr + struct.pack("<H", len(text))
            parts.append(head)
            parts.append(text)
            continue
        buf = DicomBytesIO()
        buf.is_little_endian = True
        buf.is_implicit_VR = implicit
        write_data_element(buf, converted, encodings)
        parts.append(buf.getvalue())
    return b"".join(parts)
