"""Read Part 10 bytes for de-identification with less work than ``parse_part10``.

``trialpacs.dicom.parse.parse_part10`` is the project's definition of a valid
instance. On small instances most of its time goes to ``dcmread``'s meta
header handling and to converting the elements it checks (UIDs, image
description), which then no longer copy as raw bytes on write.

Here the meta header is read by hand, the data set by pydicom's
``read_dataset`` into raw elements, and the same checks run on the raw
values. Anything this fast path does not handle, or any check that fails,
goes to ``parse_part10`` itself, so errors read exactly as they do everywhere
else and nothing it refuses is accepted here.
"""

from __future__ import annotations

import io
import struct

from pydicom.datadict import DicomDictionary
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from trialpacs.dicom.parse import KNOWN_VRS, check_structure, parse_part10
from trialpacs.dicom.uids import require_uid
from trialpacs.errors import InvalidInput

_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT"})
_SEQ_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
_UNDEFINED = 0xFFFFFFFF
# PS3.10 Table 7.1-1 (pydicom's dictionary): the file meta elements and
# their VRs. A known meta element under another VR is parse_part10's to word
# (found by atheris: a TransferSyntaxUID written as UL, which pydicom reads as
# a list of numbers while this reader took its bytes as the UID).
_META_VRS = {
    tag & 0xFFFF: entry[0].encode("ascii")
    for tag, entry in DicomDictionary.items()
    if tag >> 16 == 0x0002
}
_IDENTIFYING = (
    (0x00080016, "SOPClassUID (0008,0016)"),
    (0x00080018, "SOPInstanceUID (0008,0018)"),
    (0x0020000D, "StudyInstanceUID (0020,000D)"),
    (0x0020000E, "SeriesInstanceUID (0020,000E)"),
)

__all__ = ["read_part10"]


class _Slow(Exception):
    """Not for the fast path: let parse_part10 decide (and word any error)."""


def read_part10(data: bytes) -> tuple[Dataset, str]:
    """(data set of raw elements, transfer syntax UID) or InvalidInput.

    The data set may come without ``file_meta`` (building one per file is a
    measurable cost on small instances); the transfer syntax is returned.
    """
    try:
        return _fast(data)
    except _Slow:
        parsed = parse_part10(data)
        return parsed.dataset, parsed.transfer_syntax


def _meta(data: bytes) -> tuple[dict[int, bytes], int]:
    """Group 0002 (explicit VR little endian by PS3.10) by hand: values and where it ends."""
    if len(data) < 132 or data[128:132] != b"DICM":
        raise _Slow
    values: dict[int, bytes] = {}
    pos = 132
    end = len(data)
    while pos + 8 <= end and data[pos : pos + 2] == b"\x02\x00":
        (element,) = struct.unpack_from("<H", data, pos + 2)
        vr = data[pos + 4 : pos + 6]
        if vr.decode("latin-1") not in KNOWN_VRS:
            # Implicit VR meta and other oddities; an unknown VR (found by
            # atheris: 'UK' on TransferSyntaxUID) is parse_part10's to refuse.
            raise _Slow
        if _META_VRS.get(element, vr) != vr:
            raise _Slow
        if vr in _LONG_VRS:
            if pos + 12 > end:
                raise _Slow
            (length,) = struct.unpack_from("<I", data, pos + 8)
            pos += 12
        else:
            (length,) = struct.unpack_from("<H", data, pos + 6)
            pos += 8
        if length == _UNDEFINED or pos + length > end:
            raise _Slow
        values[0x00020000 | element] = data[pos : pos + length]
        pos += length
    return values, pos


def _text(raw: object) -> str:
    if isinstance(raw, bytes):
        return raw.decode("ascii", "replace").strip("\x00 ")
    raise _Slow


def _fast(data: bytes) -> tuple[Dataset, str]:
    meta, offset = _meta(data)
    ts_raw = meta.get(0x00020010)
    if not ts_raw:
        raise _Slow
    ts = _text(ts_raw)
    try:
        require_uid(ts, "TransferSyntaxUID (0002,0010)")
    except InvalidInput as exc:
        raise _Slow from exc
    uid = UID(ts)
    if ts == ImplicitVRLittleEndian:
        implicit = True
    elif ts == ExplicitVRLittleEndian or (uid.is_transfer_syntax and uid.is_encapsulated):
        implicit = False  # encapsulated syntaxes are all explicit VR little endian
    else:
        raise _Slow  # big endian, deflated, private syntaxes
    if not uid.is_little_endian or uid.is_deflated:
        raise _Slow
    fp = io.BytesIO(data)
    fp.seek(offset)
    try:
        ds = read_dataset(fp, implicit, True)
    except Exception as exc:
        raise _Slow from exc
    d = ds._dict
    if not d:
        raise _Slow
    if uid.is_encapsulated and _SEQ_DELIMITER not in data[-(1 << 20) :]:
        raise _Slow
    try:
        check_structure(ds)
    except Exception as exc:
        raise _Slow from exc
    _consumed(ds, data)
    identity: dict[int, str] = {}
    for tag, what in _IDENTIFYING:
        elem = d.get(tag)  # type: ignore[call-overload]
        if not isinstance(elem, RawDataElement) or elem.VR not in (None, "UI"):
            raise _Slow
        value = _text(elem.value)
        try:
            require_uid(value, what)
        except InvalidInput as exc:
            raise _Slow from exc
        identity[tag] = value
    media_sop = meta.get(0x00020003)
    if media_sop is not None and _text(media_sop) and _text(media_sop) != identity[0x00080018]:
        raise _Slow
    if not uid.is_encapsulated:
        _pixel_length(d)  # type: ignore[arg-type]
    return ds, ts  # no file_meta: the engine adds one only for a pixel cleaner


def _consumed(ds: Dataset, data: bytes) -> None:
    """No unreadable bytes after the last element (as parse_part10 checks)."""
    end = 0
    for raw in ds._dict.values():
        if not isinstance(raw, RawDataElement):
            continue
        if raw.length == _UNDEFINED:
            return
        end = max(end, raw.value_tell + raw.length)
    if end and end < len(data) and data[end:].strip(b"\x00"):
        raise _Slow


def _us(d: dict[int, object], tag: int, default: int | None = None) -> int:
    elem = d.get(tag)
    if elem is None:
        if default is None:
            raise _Slow
        return default
    if not isinstance(elem, RawDataElement) or elem.VR not in (None, "US"):
        raise _Slow
    value = elem.value
    if not isinstance(value, bytes) or len(value) != 2:
        raise _Slow
    return int.from_bytes(value, "little")


def _pixel_length(d: dict[int, object]) -> None:
    pixel = d.get(0x7FE00010)
    if pixel is None:
        return
    if not isinstance(pixel, RawDataElement):
        raise _Slow
    rows, cols, bits = _us(d, 0x00280010), _us(d, 0x00280011), _us(d, 0x00280100)
    spp = _us(d, 0x00280002, 1) or 1
    frames_elem = d.get(0x00280008)
    frames = 1
    if frames_elem is not None:
        if not isinstance(frames_elem, RawDataElement):
            raise _Slow
        text = _text(frames_elem.value)
        if text:
            if not text.isdigit():
                raise _Slow
            frames = int(text) or 1
    pixels = rows * cols * spp * frames
    expected = (pixels + 7) // 8 if bits == 1 else pixels * (bits // 8)
    if len(pixel.value or b"") < expected:
        raise _Slow
