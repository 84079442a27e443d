"""Synthetic DICOM instances for tests that need many or odd files.

Real images come from the shared corpus; these exist to make exact
situations (a given UID, a broken value, many instances) on demand.
"""

from __future__ import annotations

import io

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def make_dataset(
    *,
    study: str | None = None,
    series: str | None = None,
    sop: str | None = None,
    patient_name: str = "DOE^JANE",
    patient_id: str = "PID001",
    modality: str = "MR",
    rows: int = 2,
    cols: int = 2,
    study_date: str = "20240102",
    study_description: str = "KNEE MRI",
    series_description: str = "T1 SAG",
    instance_number: int = 1,
    frames: int = 1,
    value: int = 7,
) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = MR_STORAGE if modality == "MR" else CT_STORAGE
    ds.SOPInstanceUID = sop or generate_uid()
    ds.StudyInstanceUID = study or generate_uid()
    ds.SeriesInstanceUID = series or generate_uid()
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    ds.StudyDate = study_date
    ds.StudyTime = "101500"
    ds.SeriesDate = study_date
    ds.AccessionNumber = "ACC1"
    ds.StudyID = "S1"
    ds.ReferringPhysicianName = "HOUSE^GREGORY"
    ds.StudyDescription = study_description
    ds.SeriesDescription = series_description
    ds.Modality = modality
    ds.SeriesNumber = 1
    ds.InstanceNumber = instance_number
    ds.Rows = rows
    ds.Columns = cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    pixels = (np.arange(rows * cols * frames, dtype=np.uint16) + value).astype("<u2")
    ds.PixelData = pixels.tobytes()
    return ds


def to_bytes(ds: Dataset) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    buf = io.BytesIO()
    ds.preamble = b"\xff" * 128  # a non-zero preamble, which ingest must zero
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def make_bytes(**kwargs: object) -> bytes:
    return to_bytes(make_dataset(**kwargs))  # type: ignore[arg-type]
