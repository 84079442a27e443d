"""Pick the indexed attributes out of a dataset, as plain strings and ints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset


def text(ds: Dataset, keyword: str, limit: int = 64) -> str:
    try:
        value = ds.get(keyword)
    except Exception:
        return ""
    if value is None:
        return ""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        value = "\\".join(str(v) for v in value)
    return str(value).strip()[:limit]


def integer(ds: Dataset, keyword: str) -> int | None:
    try:
        value = ds.get(keyword)
        if value is None or value == "":
            return None
        return int(value)
    except Exception:
        return None


def name_search_key(name: str) -> str:
    """Upper-case words of a person name, space-delimited and space-padded.

    Fuzzy matching (PS3.18 fuzzymatching=true) then becomes "any word starts
    with the query word", i.e. ``LIKE '% WORD%'`` on this column.
    """
    words = name.replace("^", " ").replace("=", " ").upper().split()
    return f" {' '.join(words)} " if words else ""


@dataclass(frozen=True, slots=True)
class IndexRecord:
    patient: dict[str, Any]
    study: dict[str, Any]
    series: dict[str, Any]
    instance: dict[str, Any]


def extract(ds: Dataset) -> IndexRecord:
    patient_name = text(ds, "PatientName", 324)
    referring = text(ds, "ReferringPhysicianName", 324)
    patient = {
        "patient_id": text(ds, "PatientID"),
        "issuer": text(ds, "IssuerOfPatientID"),
        "patient_name": patient_name,
        "patient_name_search": name_search_key(patient_name),
        "birth_date": text(ds, "PatientBirthDate", 8),
        "sex": text(ds, "PatientSex", 16),
    }
    study = {
        "patient_id": patient["patient_id"],
        "patient_name": patient_name,
        "patient_name_search": patient["patient_name_search"],
        "patient_birth_date": patient["birth_date"],
        "patient_sex": patient["sex"],
        "study_date": text(ds, "StudyDate", 8),
        "study_time": text(ds, "StudyTime", 16),
        "accession_number": text(ds, "AccessionNumber", 16),
        "study_id": text(ds, "StudyID", 16),
        "study_description": text(ds, "StudyDescription"),
        "referring_physician_name": referring,
        "referring_physician_search": name_search_key(referring),
        "timepoint_id": text(ds, "ClinicalTrialTimePointID"),
    }
    series = {
        "modality": text(ds, "Modality", 16),
        "series_number": integer(ds, "SeriesNumber"),
        "series_description": text(ds, "SeriesDescription"),
        "series_date": text(ds, "SeriesDate", 8),
        "series_time": text(ds, "SeriesTime", 16),
        "body_part": text(ds, "BodyPartExamined"),
        "pps_start_date": text(ds, "PerformedProcedureStepStartDate", 8),
        "pps_start_time": text(ds, "PerformedProcedureStepStartTime", 16),
    }
    instance = {
        "sop_class_uid": text(ds, "SOPClassUID"),
        "instance_number": integer(ds, "InstanceNumber"),
        "rows": integer(ds, "Rows"),
        "columns": integer(ds, "Columns"),
        "bits_allocated": integer(ds, "BitsAllocated"),
        "number_of_frames": integer(ds, "NumberOfFrames"),
    }
    return IndexRecord(patient, study, series, instance)
