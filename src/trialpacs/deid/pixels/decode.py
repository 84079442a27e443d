"""Decode Pixel Data into the stored sample values, whatever the transfer syntax.

Masking happens on the stored values (not on a rendered copy) so that
everything outside a masked box stays bit-identical. Colour data is therefore
decoded *without* conversion to RGB: a YBR image is masked in YBR.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

__all__ = ["DecodedPixels", "UnsupportedPixelData", "decode", "is_lossy_syntax"]

NATIVE_SYNTAXES = frozenset(
    {
        ImplicitVRLittleEndian,
        ExplicitVRLittleEndian,
        ExplicitVRBigEndian,
        DeflatedExplicitVRLittleEndian,
    }
)

# Transfer syntaxes whose decoded values differ from what the modality produced.
LOSSY_SYNTAXES = frozenset(
    {
        "1.2.840.10008.1.2.4.50",  # JPEG baseline
        "1.2.840.10008.1.2.4.51",  # JPEG extended
        "1.2.840.10008.1.2.4.81",  # JPEG-LS near-lossless
        "1.2.840.10008.1.2.4.91",  # JPEG 2000
        "1.2.840.10008.1.2.4.203",  # HTJ2K
        "1.2.840.10008.1.2.4.100",  # MPEG2 and video syntaxes below
        "1.2.840.10008.1.2.4.101",
        "1.2.840.10008.1.2.4.102",
        "1.2.840.10008.1.2.4.103",
        "1.2.840.10008.1.2.4.104",
        "1.2.840.10008.1.2.4.105",
        "1.2.840.10008.1.2.4.106",
        "1.2.840.10008.1.2.4.107",
        "1.2.840.10008.1.2.4.108",
    }
)

SUPPORTED_PHOTOMETRIC = frozenset(
    {"MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL", "YBR_FULL_422", "PALETTE COLOR"}
)


class UnsupportedPixelData(ValueError):
    """The pixel data cannot be decoded or is of a kind this cleaner does not handle."""


def is_lossy_syntax(uid: str) -> bool:
    return str(uid) in LOSSY_SYNTAXES


@dataclass
class DecodedPixels:
    """Stored sample values of every frame, shape (frames, rows, cols[, samples]).

    ``photometric`` describes ``frames`` (after decoding), which can differ
    from the header: native YBR_FULL_422 comes out upsampled as YBR_FULL,
    JPEG 2000 YBR_RCT/YBR_ICT as RGB.
    """

    frames: NDArray[np.generic]
    photometric: str
    transfer_syntax: UID
    bits_allocated: int
    bits_stored: int
    signed: bool

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def is_color(self) -> bool:
        return self.frames.ndim == 4

    @property
    def lossy_source(self) -> bool:
        return is_lossy_syntax(self.transfer_syntax)

    @property
    def native(self) -> bool:
        return self.transfer_syntax in NATIVE_SYNTAXES


def transfer_syntax_of(ds: Dataset) -> UID:
    meta = getattr(ds, "file_meta", None)
    uid = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    if uid is None:
        # Datasets built in memory without file meta: pydicom's own default.
        return ExplicitVRLittleEndian if not ds.is_implicit_VR else ImplicitVRLittleEndian
    return UID(str(uid))


def decode(ds: Dataset) -> DecodedPixels:
    """Decode every frame of ``ds`` into stored values; raise UnsupportedPixelData otherwise."""
    from pydicom.pixels import get_decoder

    if "PixelData" not in ds:
        raise UnsupportedPixelData(
            "no (7FE0,0010) Pixel Data (float/double pixel data not handled)"
        )
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    if photometric not in SUPPORTED_PHOTOMETRIC and photometric not in {"YBR_RCT", "YBR_ICT"}:
        raise UnsupportedPixelData(f"photometric interpretation {photometric!r} not handled")
    bits_allocated = int(ds.get("BitsAllocated", 0))
    if bits_allocated not in (8, 16, 32):
        raise UnsupportedPixelData(f"BitsAllocated {bits_allocated} not handled")
    ts = transfer_syntax_of(ds)
    try:
        decoder = get_decoder(ts)
    except NotImplementedError as exc:
        raise UnsupportedPixelData(f"no decoder for transfer syntax {ts} ({ts.name})") from exc
    if not decoder.is_available:
        raise UnsupportedPixelData(
            f"decoder for {ts.name} is not installed (pylibjpeg plugin or GDCM needed)"
        )
    try:
        arr, meta = decoder.as_array(ds, as_rgb=False)  # type: ignore[arg-type]
    except Exception as exc:
        raise UnsupportedPixelData(f"pixel data could not be decoded: {exc}") from exc
    if not arr.flags.writeable or not arr.flags.c_contiguous:
        arr = np.array(arr, copy=True, order="C")
    n_frames = int(meta.get("number_of_frames", 1) or 1)
    samples = int(meta.get("samples_per_pixel", 1) or 1)
    if n_frames == 1:
        arr = arr[np.newaxis, ...]
    if samples not in (1, 3) or (samples == 3) != (arr.ndim == 4):
        raise UnsupportedPixelData(f"unexpected pixel array shape {arr.shape}")
    decoded_pi = str(meta.get("photometric_interpretation", photometric))
    if decoded_pi == "YBR_FULL_422":
        # Decoders hand back full-resolution chroma; the array is YBR_FULL.
        decoded_pi = "YBR_FULL"
    return DecodedPixels(
        frames=arr,
        photometric=decoded_pi,
        transfer_syntax=ts,
        bits_allocated=bits_allocated,
        bits_stored=int(ds.get("BitsStored", bits_allocated)),
        signed=int(ds.get("PixelRepresentation", 0)) == 1,
    )
