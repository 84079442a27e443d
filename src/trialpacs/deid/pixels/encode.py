"""Write masked frames back into the dataset without losing more than the input had lost.

Rules, in order:

* native input stays native, with its transfer syntax;
* lossless compressed input is re-encoded with the same transfer syntax when
  an encoder is installed (RLE, JPEG 2000 lossless), otherwise stored as
  Explicit VR Little Endian - both are lossless, so the unmasked pixels stay
  bit-identical;
* lossy input (JPEG baseline/extended, JPEG 2000, JPEG-LS near-lossless) is
  decoded once, masked, and stored *uncompressed* (Explicit VR Little
  Endian): no second lossy generation. LossyImageCompression stays (or
  becomes) "01" with the original method and ratio, because the pixels did
  go through one lossy step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
)

from .decode import DecodedPixels

__all__ = ["EncodeResult", "write_pixels"]

# Lossless syntaxes for which we keep the syntax by re-encoding.
_REENCODE = frozenset({RLELossless, JPEG2000Lossless})
_KEEP_NATIVE = frozenset(
    {ImplicitVRLittleEndian, ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian}
)


@dataclass(frozen=True)
class EncodeResult:
    transfer_syntax: UID
    note: str


def _set_transfer_syntax(ds: Dataset, uid: UID) -> None:
    if getattr(ds, "file_meta", None) is None:
        ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid


def _native_bytes(decoded: DecodedPixels, big_endian: bool = False) -> bytes:
    arr = decoded.frames
    dtype = arr.dtype
    if dtype.itemsize > 1:
        dtype = dtype.newbyteorder(">") if big_endian else dtype.newbyteorder("<")
    data = np.ascontiguousarray(arr, dtype=dtype).tobytes()
    if len(data) % 2:
        data += b"\x00"
    return data


def _update_image_module(ds: Dataset, decoded: DecodedPixels) -> None:
    ds.PhotometricInterpretation = decoded.photometric
    if decoded.is_color:
        ds.PlanarConfiguration = 0


def _write_native(ds: Dataset, decoded: DecodedPixels, uid: UID) -> None:
    _update_image_module(ds, decoded)
    _set_transfer_syntax(ds, uid)
    ds.PixelData = _native_bytes(decoded, big_endian=uid == ExplicitVRBigEndian)
    ds["PixelData"].VR = "OB" if decoded.bits_allocated == 8 else "OW"
    ds["PixelData"].is_undefined_length = False


def write_pixels(ds: Dataset, decoded: DecodedPixels) -> EncodeResult:
    """Store ``decoded.frames`` in ``ds`` following the module rules; returns what was done."""
    ts = decoded.transfer_syntax
    if ts in _KEEP_NATIVE:
        _write_native(ds, decoded, ts)
        return EncodeResult(ts, "native, unchanged transfer syntax")
    if decoded.native:  # big endian (retired): the rest of the dataset is big endian too
        _write_native(ds, decoded, ts)
        return EncodeResult(ts, "native big endian, unchanged transfer syntax")
    if decoded.lossy_source:
        _write_native(ds, decoded, ExplicitVRLittleEndian)
        ds.LossyImageCompression = "01"
        return EncodeResult(
            ExplicitVRLittleEndian,
            f"lossy {ts.name} input decoded once and stored uncompressed (no second lossy step)",
        )
    if ts in _REENCODE:
        try:
            _update_image_module(ds, decoded)
            arr = decoded.frames if decoded.n_frames > 1 else decoded.frames[0]
            ds.compress(
                ts,
                arr,
                photometric_interpretation=decoded.photometric,
                generate_instance_uid=False,
            )
            return EncodeResult(UID(str(ds.file_meta.TransferSyntaxUID)), f"re-encoded {ts.name}")
        except Exception as exc:  # encoder missing or refuses the data: stay lossless
            note = f"{ts.name} encoder failed ({exc}); stored as explicit little endian"
            _write_native(ds, decoded, ExplicitVRLittleEndian)
            return EncodeResult(ExplicitVRLittleEndian, note)
    _write_native(ds, decoded, ExplicitVRLittleEndian)
    return EncodeResult(
        ExplicitVRLittleEndian,
        f"no encoder for lossless {ts.name}; stored as explicit little endian",
    )
