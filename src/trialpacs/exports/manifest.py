"""The self-describing files of a package: manifests, datasheet, README, checksums.

Everything here is a pure function of the cohort version and the archive's
bytes: fixed row and column order, no timestamps, no export IDs, Parquet
written by one pinned set of options. So the same cohort version exported
twice gives byte-identical manifests (the test exports twice and compares).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from trialpacs.deid.profile import Profile
from trialpacs.exports.select import CohortSeries, Counts

# (column, arrow type): the manifest's schema, in order.
COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("trial_id", pa.string()),
    ("site_id", pa.string()),
    ("subject", pa.string()),
    ("timepoint", pa.string()),
    ("days_from_baseline", pa.int32()),
    ("study_uid", pa.string()),
    ("study_date", pa.string()),
    ("series_uid", pa.string()),
    ("series_number", pa.int32()),
    ("modality", pa.string()),
    ("body_part", pa.string()),
    ("series_description", pa.string()),
    ("qc_status", pa.string()),
    ("instances", pa.int32()),
    ("dicom_bytes", pa.int64()),
    ("dicom_path", pa.string()),
    ("nifti_path", pa.string()),
    ("nifti_status", pa.string()),
    ("sop_class_uid", pa.string()),
    ("manufacturer", pa.string()),
    ("manufacturer_model", pa.string()),
    ("rows", pa.int32()),
    ("columns", pa.int32()),
    ("pixel_spacing_row", pa.float64()),
    ("pixel_spacing_col", pa.float64()),
    ("slice_thickness", pa.float64()),
    ("magnetic_field_strength", pa.float64()),
    ("patient_sex", pa.string()),
    ("patient_age", pa.string()),
)


@dataclass(frozen=True)
class SeriesEntry:
    """A series as packaged: where its files went and how its NIfTI fared."""

    series: CohortSeries
    dicom_path: str
    nifti_path: str = ""
    nifti_status: str = "not_requested"


def rows(entries: Sequence[SeriesEntry]) -> list[dict[str, Any]]:
    out = []
    for e in entries:
        s = e.series
        a = s.attributes
        out.append(
            {
                "trial_id": s.trial_id,
                "site_id": s.site_id,
                "subject": s.subject,
                "timepoint": s.timepoint,
                "days_from_baseline": s.days_from_baseline,
                "study_uid": s.study_uid,
                "study_date": s.study_date,
                "series_uid": s.series_uid,
                "series_number": s.series_number,
                "modality": s.modality,
                "body_part": s.body_part,
                "series_description": s.series_description,
                "qc_status": s.qc_status,
                "instances": s.instances,
                "dicom_bytes": s.bytes,
                "dicom_path": e.dicom_path,
                "nifti_path": e.nifti_path,
                "nifti_status": e.nifti_status,
                **{k: a.get(k) for k, _ in COLUMNS[18:]},
            }
        )
    return out


def manifest_csv(table: Sequence[dict[str, Any]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    names = [name for name, _ in COLUMNS]
    writer.writerow(names)
    for row in table:
        writer.writerow(["" if row[n] is None else _text(row[n]) for n in names])
    return buf.getvalue().encode("utf-8")


def _text(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def manifest_parquet(table: Sequence[dict[str, Any]]) -> bytes:
    schema = pa.schema([pa.field(n, t) for n, t in COLUMNS])
    arrays = [pa.array([row[n] for row in table], type=t) for n, t in COLUMNS]
    sink = io.BytesIO()
    pq.write_table(
        pa.Table.from_arrays(arrays, schema=schema),
        sink,
        compression="zstd",
        compression_level=3,
        use_dictionary=False,
        write_statistics=True,
        version="2.6",
        data_page_version="1.0",
        row_group_size=1 << 20,
        store_schema=False,
    )
    return sink.getvalue()


def datasheet(c: Counts, cohort: dict[str, Any]) -> tuple[bytes, bytes]:
    """The counts as JSON (for programs) and Markdown (for people)."""
    doc = {"cohort": cohort, "counts": c.to_mapping()}
    as_json = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
    lines = [
        f"# Datasheet: {cohort['ref']}",
        "",
        f"- series: {c.series}",
        f"- instances: {c.instances}",
        f"- studies: {c.studies}",
        f"- subjects: {c.subjects}",
        f"- DICOM bytes: {c.bytes}",
        "",
    ]
    for title, table in (
        ("site", c.by_site),
        ("modality", c.by_modality),
        ("time point", c.by_timepoint),
    ):
        lines += [f"## Series per {title}", "", f"| {title} | series |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in table.items()] + [""]
    return as_json, "\n".join(lines).encode()


def readme(
    cohort: dict[str, Any], profile: Profile | None, profile_error: str, options: dict[str, Any]
) -> bytes:
    """What the package is, how it was selected and how its data was de-identified."""
    d = cohort["definition"]
    lines = [
        f"# Research dataset: cohort {cohort['ref']} of trial {d['trial']}",
        "",
        "De-identified images exported by trialpacs from the trial's published archive.",
        "Identified data never enters an export.",
        "",
        "## Contents",
        "",
        "- `dicom/<subject>/<time point>/<series UID>/NNNNN.dcm`: the DICOM instances",
        "  as published (de-identified), in instance order.",
    ]
    if options.get("nifti"):
        lines.append(
            "- `nifti/<subject>/<time point>/<series UID>.nii.gz` and `.json`: volumes and "
            "BIDS-style sidecars (dcm2niix), each checked against the DICOM geometry."
        )
    lines += [
        "- `manifest.csv`, `manifest.parquet`: one row per series (same columns).",
        "- `datasheet.json`, `datasheet.md`: counts per site, modality and time point.",
        "- `cohort.json`: the cohort version that selected these series.",
        "- `SHA256SUMS`: SHA-256 of every file above (`sha256sum -c SHA256SUMS`).",
        "- `export.json`: who exported the package, when and where to (the only file",
        "  that differs between two exports of one cohort version).",
        "",
        "## Selection",
        "",
        "```json",
        json.dumps(d, indent=2, sort_keys=True),
        "```",
        "",
        "`days_from_baseline` counts from the subject's earliest study at the trial's first",
        "time point (or its earliest study). When the profile shifts dates (below), it",
        "shifts all of a subject's dates alike: intervals are real, calendar dates are not.",
        "",
        "## De-identification",
        "",
    ]
    if profile is None:
        lines.append(f"The trial's profile could not be described: {profile_error}")
    else:
        lines += [
            f"- profile: `{profile.name}` (DICOM PS3.15 Annex E Basic Profile with options)",
            f"- options: {', '.join(sorted(o.value for o in profile.options)) or 'none'}",
            f"- date shift: {profile.date_shift_days[0]} to {profile.date_shift_days[1]} days, "
            "one per subject",
            f"- subject IDs: `{profile.subject_id_format}`",
            f"- ages over 89 capped: {'yes' if profile.cap_age else 'no'}",
            f"- attributes not in the standard table: "
            f"{'kept' if profile.unknown_standard == 'K' else 'removed'}; private attributes: "
            f"{'kept' if profile.unknown_nonstandard == 'K' else 'removed'} "
            f"(except {len(profile.safe_private)} known safe)",
            f"- per-attribute overrides: {len(profile.overrides)}",
            f"- burned-in text in pixels: {profile.pixel_policy}",
            f"- free-text named-entity detection: {profile.ner}",
        ]
    lines += [
        "",
        "## Export options",
        "",
        "```json",
        json.dumps(options, indent=2, sort_keys=True),
        "```",
        "",
    ]
    return "\n".join(lines).encode()


def checksums(files: dict[str, str]) -> bytes:
    """``sha256sum`` format, sorted by path."""
    return "".join(f"{digest}  {path}\n" for path, digest in sorted(files.items())).encode()
