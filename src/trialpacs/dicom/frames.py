"""Frame extraction for WADO-RS frames and bulk data.

Native pixel data is sliced without decoding; encapsulated pixel data is
split into frames with pydicom's fragment parser, and decoded (pylibjpeg,
pydicom's RLE decoder) only when the client asked for uncompressed frames.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.uid import UID

from trialpacs.errors import InvalidInput, NotFound

# Media types of compressed frames per transfer syntax (PS3.18 Table 8.7.3-2/3).
FRAME_MEDIA_TYPES: dict[str, str] = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
    "1.2.840.10008.1.2.5": "image/x-dicom-rle",
}
EXPLICIT_LE = "1.2.840.10008.1.2.1"


@dataclass(frozen=True, slots=True)
class Frame:
    number: int
    data: bytes
    transfer_syntax: str  # what the bytes are encoded in

    @property
    def media_type(self) -> str:
        return FRAME_MEDIA_TYPES.get(self.transfer_syntax, "application/octet-stream")


def load(data: bytes) -> Dataset:
    return dcmread(io.BytesIO(data), force=True)


def frame_count(ds: Dataset) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


def check_numbers(ds: Dataset, numbers: list[int]) -> None:
    if "PixelData" not in ds:
        raise NotFound("the instance has no pixel data")
    total = frame_count(ds)
    bad = [n for n in numbers if n < 1 or n > total]
    if bad:
        raise NotFound(f"frame {bad[0]} does not exist; the instance has {total} frame(s)")


def native_frames(ds: Dataset, numbers: list[int]) -> list[Frame]:
    """Frames as stored (encapsulated frames stay compressed)."""
    check_numbers(ds, numbers)
    ts = UID(str(ds.file_meta.TransferSyntaxUID))
    pixel = ds.PixelData
    total = frame_count(ds)
    if ts.is_compressed:
        frames = list(generate_frames(pixel, number_of_frames=total))
        return [Frame(n, frames[n - 1], str(ts)) for n in numbers]
    size = _frame_size(ds)
    out = []
    for n in numbers:
        chunk = pixel[(n - 1) * size : n * size]
        out.append(Frame(n, bytes(chunk), EXPLICIT_LE))
    return out


def uncompressed_frames(ds: Dataset, numbers: list[int]) -> list[Frame]:
    """Frames decoded to native little-endian bytes."""
    check_numbers(ds, numbers)
    ts = UID(str(ds.file_meta.TransferSyntaxUID))
    if not ts.is_compressed and ts.is_little_endian:
        return native_frames(ds, numbers)
    try:
        arr = ds.pixel_array
    except Exception as exc:
        raise InvalidInput(f"cannot decode pixel data in {ts.name}: {exc}") from exc
    if frame_count(ds) == 1:
        arr = arr[np.newaxis, ...]
    return [
        Frame(n, arr[n - 1].astype(arr.dtype.newbyteorder("<")).tobytes(), EXPLICIT_LE)
        for n in numbers
    ]


def _frame_size(ds: Dataset) -> int:
    rows, cols = int(ds.Rows), int(ds.Columns)
    spp = int(ds.get("SamplesPerPixel", 1) or 1)
    bits = int(ds.BitsAllocated)
    if bits == 1:
        raise InvalidInput("frame retrieval of 1-bit pixel data is not supported")
    return rows * cols * spp * (bits // 8)
