"""Helpers for the pixel cleaner tests: scripted OCR engines and dataset builders.

Most tests use engines that "find" text deterministically so that decoding,
masking and re-encoding are tested exactly; a few tests run the real
rapidocr models.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np
import pydicom
from numpy.typing import NDArray
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from trialpacs.deid.pixels.ocr import OcrError, TextRegion


class FixedEngine:
    """Reports the same boxes (in view coordinates) on every picture."""

    name = "fixed"

    def __init__(self, boxes: list[tuple[int, int, int, int]], text: str = "DOE^JANE") -> None:
        self.boxes = boxes
        self.text = text
        self.calls = 0

    def detect(self, image: NDArray[np.uint8]) -> list[TextRegion]:
        self.calls += 1
        return [TextRegion(x0, y0, x1, y1, 0.9) for x0, y0, x1, y1 in self.boxes]

    def recognize(self, image: NDArray[np.uint8], regions: list[TextRegion]) -> list[TextRegion]:
        return [TextRegion(r.x0, r.y0, r.x1, r.y1, r.score, self.text, 0.99) for r in regions]


class WhiteInkEngine:
    """Finds the bounding box of pure-white (255) pixels: text drawn at full scale."""

    name = "white-ink"

    def __init__(self) -> None:
        self.calls = 0

    def detect(self, image: NDArray[np.uint8]) -> list[TextRegion]:
        self.calls += 1
        ys, xs = np.nonzero(np.all(image == 255, axis=-1))
        if len(xs) == 0:
            return []
        return [TextRegion(int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)]

    def recognize(self, image: NDArray[np.uint8], regions: list[TextRegion]) -> list[TextRegion]:
        return [TextRegion(r.x0, r.y0, r.x1, r.y1, r.score, "SMITH^JOHN", 0.99) for r in regions]


class FailingEngine:
    name = "failing"

    def detect(self, image: NDArray[np.uint8]) -> list[TextRegion]:
        raise OcrError("model crashed")

    def recognize(self, image: NDArray[np.uint8], regions: list[TextRegion]) -> list[TextRegion]:
        raise OcrError("model crashed")


class SlowEngine:
    name = "slow"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def detect(self, image: NDArray[np.uint8]) -> list[TextRegion]:
        time.sleep(self.seconds)
        return []

    def recognize(self, image: NDArray[np.uint8], regions: list[TextRegion]) -> list[TextRegion]:
        return regions


def read(path: Path) -> Dataset:
    return pydicom.dcmread(path)


def image_dataset(
    arr: NDArray[np.generic],
    *,
    photometric: str,
    bits_stored: int | None = None,
    modality: str = "OT",
    frames: bool = False,
) -> Dataset:
    """A minimal Secondary-Capture-like instance holding ``arr`` natively."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "DOE^JANE"
    ds.PatientID = "MRN00456789"
    ds.PatientBirthDate = "19700101"
    ds.Modality = modality
    color = arr.ndim == (4 if frames else 3)
    shape = arr.shape[1:] if frames else arr.shape
    ds.Rows, ds.Columns = int(shape[0]), int(shape[1])
    ds.SamplesPerPixel = 3 if color else 1
    if color:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = arr.dtype.itemsize * 8
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if arr.dtype.kind == "i" else 0
    if frames:
        ds.NumberOfFrames = int(arr.shape[0])
    ds.PixelData = np.ascontiguousarray(arr).tobytes()
    ds["PixelData"].VR = "OB" if ds.BitsAllocated == 8 else "OW"
    return ds


def clone(ds: Dataset) -> Dataset:
    return copy.deepcopy(ds)


def plant_text(
    frame: NDArray[np.generic], text: str, xy: tuple[int, int], size: int, value: float
) -> tuple[NDArray[np.generic], tuple[int, int, int, int]]:
    """Draw ``text`` into a copy of a stored frame; returns it and the ink's (x0, y0, x1, y1)."""
    from PIL import Image, ImageDraw, ImageFont

    rows, cols = frame.shape[:2]
    ink = Image.new("L", (cols, rows), 0)
    ImageDraw.Draw(ink).text(xy, text, fill=255, font=ImageFont.load_default(size=size))
    m = np.asarray(ink) > 0
    ys, xs = np.nonzero(m)
    out = np.array(frame, copy=True)
    out[m] = np.asarray(value).astype(frame.dtype)
    return out, (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
