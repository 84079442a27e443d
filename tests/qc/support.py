"""Helpers for the QC tests and the authorisation matrix."""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.uid import generate_uid

from trialpacs.archive import Archive
from trialpacs.qc.features import thumbnail_png
from trialpacs.qc.store import save_result
from trialpacs.qc.synthetic import Source, variant
from trialpacs.trials.models import PipelineSeries


def plant_held(archive: Archive, trial: str, site: str, reason: str = "planted") -> str:
    """A series held by QC in ``trial``/``site``; returns its de-identified Series UID."""
    key, deid = generate_uid(), generate_uid()
    with archive.db.write() as session:
        session.add(
            PipelineSeries(
                series_uid=key, study_uid=generate_uid(), trial_id=trial, site_id=site,
                state="held_qc", seen_instances=1, published_instances=0, reason=reason,
            )
        )  # fmt: skip
    save_result(
        archive.db, key, deid_series_uid=deid, deid_study_uid=generate_uid(), trial_id=trial,
        site_id=site, subject=f"{site}-0001", modality="MR", stratum="MR/SAG/t1",
        thumbnail=thumbnail_png(np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)),
        metadata_status="conflicting", metadata_score=1.0, image_score=0.9, fused_score=0.94,
        verdict="hold", reasons=[reason],
    )  # fmt: skip
    return deid


def series(source: Source, seed: int, kind: str = "plain", **header: str) -> list[Dataset]:
    """A seeded variant of a real series, with identifying and descriptive values set."""
    datasets = variant(source, np.random.default_rng(seed), kind)  # type: ignore[arg-type]
    for ds in datasets:
        ds.PatientName, ds.PatientID = "MUSTERMANN^ERIKA", f"MRN{seed:05d}"
        ds.PatientBirthDate, ds.StudyDate = "19600101", "20260101"
        for key, value in header.items():
            setattr(ds, key, value)
    return datasets


def part10(ds: Dataset) -> bytes:
    buf = DicomBytesIO()
    ds.preamble = b"\0" * 128
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()
