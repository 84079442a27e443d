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
