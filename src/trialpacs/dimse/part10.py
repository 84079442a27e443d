"""Part 10 bytes from a received C-STORE data set, without decoding it.

A C-STORE carries the data set already encoded in the negotiated transfer
syntax. Prefixing it with a file meta header gives exactly the file the
sender would have written; decoding and re-encoding instead would cost time
and could silently change values (private tags, odd VRs, padding).

The meta header is encoded by hand: it is six fixed elements, and pydicom's
general writer took 0.6 ms of a 8 ms C-STORE round trip.
"""

from __future__ import annotations

import struct

from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

from trialpacs.dicom.parse import PREAMBLE

IMPLEMENTATION_VERSION = "TRIALPACS_010"


def _element(tag: int, vr: bytes, value: bytes, pad: bytes = b"\x00") -> bytes:
    if len(value) % 2:
        value += pad
    return struct.pack("<HH2sH", 0x0002, tag, vr, len(value)) + value


_VERSION = struct.pack("<HH2sHI", 0x0002, 0x0001, b"OB", 0, 2) + b"\x00\x01"
_IMPLEMENTATION = _element(0x0012, b"UI", str(PYDICOM_IMPLEMENTATION_UID).encode()) + _element(
    0x0013, b"SH", IMPLEMENTATION_VERSION.encode(), b" "
)


def file_meta(sop_class_uid: str, sop_instance_uid: str, transfer_syntax: str) -> bytes:
    """Group 0002 in Explicit VR Little Endian, with its group length."""
    body = b"".join(
        (
            _VERSION,
            _element(0x0002, b"UI", _clean(sop_class_uid).encode("ascii")),
            _element(0x0003, b"UI", _clean(sop_instance_uid).encode("ascii")),
            _element(0x0010, b"UI", _clean(transfer_syntax).encode("ascii")),
            _IMPLEMENTATION,
        )
    )
    return struct.pack("<HH2sHI", 0x0002, 0x0000, b"UL", 4, len(body)) + body


def build_part10(
    dataset: bytes,
    *,
    sop_class_uid: str,
    sop_instance_uid: str,
    transfer_syntax: str,
) -> bytes:
    """Zero preamble + DICM + file meta + the encoded data set as received.

    The meta header depends only on the instance and its syntax (no sender
    AE title, no time), so the same data set sent twice, by any peer, gives
    the same bytes and is recognised by the store as a duplicate.
    """
    return b"".join(
        (PREAMBLE, b"DICM", file_meta(sop_class_uid, sop_instance_uid, transfer_syntax), dataset)
    )


def _clean(uid: str) -> str:
    return str(uid).strip("\x00 ")
