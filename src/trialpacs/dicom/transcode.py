"""Re-encode a stored instance for a client that cannot take its transfer syntax."""

from __future__ import annotations

import io

from pydicom import dcmread
from pydicom.uid import UID, ExplicitVRLittleEndian

from trialpacs.dicom.parse import PREAMBLE
from trialpacs.errors import InvalidInput

EXPLICIT_LE = str(ExplicitVRLittleEndian)


def stored_syntax(data: bytes) -> str:
    ds = dcmread(io.BytesIO(data), stop_before_pixels=True, specific_tags=[0x00020010])
    return str(ds.file_meta.TransferSyntaxUID)


def to_explicit_le(data: bytes, stored_ts: str) -> bytes:
    """The instance in Explicit VR Little Endian, decompressing if needed."""
    if stored_ts == EXPLICIT_LE:
        return data
    ds = dcmread(io.BytesIO(data), force=True)
    ts = UID(stored_ts)
    try:
        if ts.is_compressed:
            ds.decompress()
    except Exception as exc:
        raise InvalidInput(f"cannot decompress {ts.name} pixel data: {exc}") from exc
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True, implicit_vr=False, little_endian=True)
    return PREAMBLE + buf.getvalue()[128:]
