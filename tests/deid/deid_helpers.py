"""Synthetic instances and shared settings for the de-identification tests."""

from __future__ import annotations

import io

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

SECRET = b"test-secret-0123456789abcdef"
MR = "1.2.840.10008.5.1.4.1.1.4"


def base_dataset(
    *,
    patient_id: str = "MRN12345",
    patient_name: str = "HARTWELL^JANE^Q",
    study: str = "1.2.826.0.1.3680043.9.1.1",
    series: str = "1.2.826.0.1.3680043.9.1.1.1",
    sop: str = "1.2.826.0.1.3680043.9.1.1.1.1",
    study_date: str = "20240102",
    pixels: bool = True,
) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = MR
    ds.SOPInstanceUID = sop
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.FrameOfReferenceUID = study + ".9"
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19700304"
    ds.PatientSex = "F"
    ds.PatientAge = "053Y"
    ds.StudyDate = study_date
    ds.SeriesDate = study_date
    ds.StudyTime = "101500"
    ds.AccessionNumber = "ACC998877"
    ds.InstitutionName = "St. Mary Hospital"
    ds.ReferringPhysicianName = "HOUSE^GREGORY"
    ds.StudyDescription = "MRI RIGHT KNEE T1 for Jane Hartwell"
    ds.SeriesDescription = "SAG PD FS"
    ds.Modality = "MR"
    ds.Manufacturer = "ACME"
    ds.SeriesNumber = 3
    ds.InstanceNumber = 1
    if pixels:
        ds.Rows = 2
        ds.Columns = 2
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.PixelData = np.array([1, 2, 3, 4], dtype="<u2").tobytes()
    return ds


def to_part10(ds: Dataset) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.preamble = b"\xff" * 128
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def read(data: bytes) -> Dataset:
    return dcmread(io.BytesIO(data))


def code_item(value: str = "T-15710") -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = "SRT"
    item.CodeMeaning = "Knee"
    return item


def ref_item(sop_class: str, sop_instance: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class
    item.ReferencedSOPInstanceUID = sop_instance
    return item


def sequence(*items: Dataset) -> Sequence:
    return Sequence(list(items))


SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def text_image(
    text: str = "HARTWELL JANE",
    *,
    modality: str = "OT",
    sop_class: str = SECONDARY_CAPTURE,
    size: int = 256,
    font_size: int = 18,
    xy: tuple[int, int] = (8, 8),
    sop: str = "1.2.826.0.1.3680043.9.1.2.1.1",
) -> tuple[Dataset, tuple[int, int, int, int]]:
    """An 8-bit grey image with ``text`` burned into a corner; returns it and the ink box.

    The header is ``base_dataset()``'s (patient HARTWELL^JANE^Q), so the
    burned-in name is the patient's own.
    """
    from PIL import Image, ImageDraw, ImageFont

    ds = base_dataset(sop=sop, pixels=False)
    ds.SOPClassUID = sop_class
    ds.Modality = modality
    ramp = np.linspace(20, 90, size, dtype=np.float64)
    background = (ramp[None, :] + ramp[:, None] / 2).astype(np.uint8)
    ink = Image.new("L", (size, size), 0)
    ImageDraw.Draw(ink).text(xy, text, fill=255, font=ImageFont.load_default(size=font_size))
    mask = np.asarray(ink) > 0
    ys, xs = np.nonzero(mask)
    arr = background.copy()
    arr[mask] = 250
    ds.Rows = ds.Columns = size
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = arr.tobytes()
    ds["PixelData"].VR = "OB"
    return ds, (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def to_part10_lossy_j2k(ds: Dataset) -> bytes:
    """``ds`` compressed as lossy JPEG 2000 (1.2.840.10008.1.2.4.91), as Part 10 bytes."""
    from pydicom.uid import JPEG2000

    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.compress(JPEG2000, j2k_cr=[8], generate_instance_uid=False)
    ds.LossyImageCompression = "01"
    meta = ds.file_meta
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.preamble = b"\xff" * 128
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()
