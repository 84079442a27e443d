"""Resolve a cohort over the de-identified (published) archive, and count it.

This is the only query of the export path, and it names the collection
itself: ``studies.collection = 'published'`` and blobs in the archive's own
store. Identified data (quarantine, unassigned, any site backend) cannot be
selected whatever the definition says.

Time points come from the index when the pipeline records them (a
``timepoint_id`` column on ``studies``, ``series`` or ``pipeline_series``), else from
ClinicalTrialTimePointID (0012,0050) in the stored metadata of the series'
first instance. The baseline of a subject is its earliest study date at the
trial's first time point, or its earliest study date when it has none there;
filters never move a baseline (a cohort of follow-up CTs still counts days
from the subject's first visit).
"""

from __future__ import annotations

import json
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from trialpacs.archive import Archive
from trialpacs.exports.cohort import CohortDefinition
from trialpacs.index.models import Instance, Series, Study
from trialpacs.trials import catalog
from trialpacs.trials.models import PUBLISHED, PipelineSeries

UNASSIGNED_TIMEPOINT = "unassigned"
_TIMEPOINT_COLUMNS = ("timepoint_id", "timepoint", "time_point_id", "time_point")


@dataclass(frozen=True)
class CohortSeries:
    """One series of a cohort, with what researchers filter on."""

    trial_id: str
    site_id: str
    subject: str
    timepoint: str
    days_from_baseline: int | None
    study_uid: str
    series_uid: str
    series_number: int | None
    modality: str
    body_part: str
    series_description: str
    study_date: str
    qc_status: str
    instances: int
    bytes: int
    attributes: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def sort_key(self) -> tuple[Any, ...]:
        return (
            self.site_id,
            self.subject,
            self.days_from_baseline if self.days_from_baseline is not None else 10**9,
            self.timepoint,
            self.study_uid,
            self.series_number if self.series_number is not None else 10**9,
            self.series_uid,
        )


@dataclass(frozen=True)
class Counts:
    series: int
    instances: int
    studies: int
    subjects: int
    bytes: int
    by_site: dict[str, int]
    by_modality: dict[str, int]
    by_timepoint: dict[str, int]

    def to_mapping(self) -> dict[str, Any]:
        return {
            "series": self.series,
            "instances": self.instances,
            "studies": self.studies,
            "subjects": self.subjects,
            "bytes": self.bytes,
            "by_site": self.by_site,
            "by_modality": self.by_modality,
            "by_timepoint": self.by_timepoint,
        }


def counts(series: Sequence[CohortSeries]) -> Counts:
    """Counts per site, modality and time point (the preview and the datasheet)."""

    def tally(values: list[str]) -> dict[str, int]:
        return dict(sorted(Counter(values).items()))

    return Counts(
        series=len(series),
        instances=sum(s.instances for s in series),
        studies=len({s.study_uid for s in series}),
        subjects=len({(s.site_id, s.subject) for s in series}),
        bytes=sum(s.bytes for s in series),
        by_site=tally([s.site_id for s in series]),
        by_modality=tally([s.modality for s in series]),
        by_timepoint=tally([s.timepoint for s in series]),
    )


def _timepoint_columns() -> list[Any]:
    """Index columns holding a visit, most specific first (study, series, pipeline row)."""
    return [
        column
        for model in (Study, Series, PipelineSeries)
        for name in _TIMEPOINT_COLUMNS
        if (column := getattr(model, name, None)) is not None
    ]


def resolve(archive: Archive, cohort: CohortDefinition) -> list[CohortSeries]:
    """The cohort's series in a fixed order (site, subject, days, time point, study, series)."""
    trial = catalog.get_trial(archive.db, cohort.trial)
    first_tp = trial.timepoints[0].timepoint_id if trial and trial.timepoints else None
    with archive.db.read() as session:
        rows = _rows(session, cohort.trial)
        first_meta = _first_metadata(session, [r["series_pk"] for r in rows])
    for r in rows:
        meta = first_meta.get(r["series_pk"], {})
        r["attributes"] = _attributes(meta)
        tp = r.pop("tp_column", None) or _value(meta, "00120050") or UNASSIGNED_TIMEPOINT
        r["timepoint"] = str(tp)
    baselines = _baselines(rows, first_tp)
    out: list[CohortSeries] = []
    for r in rows:
        subject = r["subject"]
        days = _days(baselines.get((r["site_id"], subject)), r["study_date"])
        item = CohortSeries(
            trial_id=cohort.trial,
            site_id=r["site_id"],
            subject=subject,
            timepoint=r["timepoint"],
            days_from_baseline=days,
            study_uid=r["study_uid"],
            series_uid=r["series_uid"],
            series_number=r["series_number"],
            modality=r["modality"],
            body_part=r["body_part"],
            series_description=r["series_description"],
            study_date=r["study_date"],
            qc_status=r["qc_status"],
            instances=r["instances"],
            bytes=r["bytes"],
            attributes=r["attributes"],
        )
        if _selected(cohort, item):
            out.append(item)
    out.sort(key=lambda s: s.sort_key)
    return out


def _selected(c: CohortDefinition, s: CohortSeries) -> bool:
    return (
        (not c.sites or s.site_id in c.sites)
        and (not c.subjects or s.subject in c.subjects)
        and (not c.timepoints or s.timepoint in c.timepoints)
        and (not c.modalities or s.modality.upper() in c.modalities)
        and (not c.body_parts or s.body_part.upper() in c.body_parts)
        and (not c.qc_status or s.qc_status in c.qc_status)
        and c.matches_description(s.series_description)
        and c.matches_days(s.days_from_baseline)
    )


def _rows(session: Session, trial_id: str) -> list[dict[str, Any]]:
    """Every published series of the trial (baselines need all of them, not the filtered)."""
    sizes = (
        select(
            Instance.series_pk.label("series_pk"),
            func.count(Instance.pk).label("n"),
            func.sum(Instance.size).label("bytes"),
        )
        .group_by(Instance.series_pk)
        .subquery()
    )
    tp_columns = _timepoint_columns()
    columns: list[Any] = [
        Series.pk,
        Series.series_uid,
        Series.series_number,
        Series.modality,
        Series.body_part,
        Series.series_description,
        Study.study_uid,
        Study.site_id,
        Study.patient_id,
        Study.study_date,
        PipelineSeries.state,
        sizes.c.n,
        sizes.c.bytes,
    ]
    columns.extend(tp_columns)
    stmt = (
        select(*columns)
        .join(Study, Study.pk == Series.study_pk)
        .join(sizes, sizes.c.series_pk == Series.pk)
        .outerjoin(PipelineSeries, PipelineSeries.published_series_uid == Series.series_uid)
        .where(Study.collection == PUBLISHED, Study.trial_id == trial_id)
    )
    out = []
    for row in session.execute(stmt).all():
        values = list(row)
        out.append(
            {
                "series_pk": values[0],
                "series_uid": values[1],
                "series_number": values[2],
                "modality": values[3] or "",
                "body_part": values[4] or "",
                "series_description": values[5] or "",
                "study_uid": values[6],
                "site_id": values[7] or "",
                "subject": values[8] or "",
                "study_date": values[9] or "",
                "qc_status": "passed" if values[10] == "published" else "not_checked",
                "instances": int(values[11] or 0),
                "bytes": int(values[12] or 0),
                # the first visit the index knows (empty: not assigned there)
                "tp_column": next((v for v in values[13:] if v), None),
            }
        )
    return out


def _first_metadata(session: Session, series_pks: list[int]) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for start in range(0, len(series_pks), 500):
        chunk = series_pks[start : start + 500]
        first = (
            select(func.min(Instance.pk))
            .where(Instance.series_pk.in_(chunk))
            .group_by(Instance.series_pk)
        )
        stmt = select(Instance.series_pk, Instance.metadata_json).where(Instance.pk.in_(first))
        for series_pk, blob in session.execute(stmt).all():
            out[series_pk] = json.loads(zlib.decompress(blob))
    return out


def _value(meta: dict[str, Any], tag: str) -> Any:
    element = meta.get(tag) or {}
    values = element.get("Value") or []
    return values[0] if values else None


def _values(meta: dict[str, Any], tag: str) -> list[Any]:
    element = meta.get(tag) or {}
    return list(element.get("Value") or [])


def _attributes(meta: dict[str, Any]) -> dict[str, Any]:
    """Acquisition attributes researchers filter on, from the first instance."""

    def num(tag: str) -> float | None:
        v = _value(meta, tag)
        try:
            return float(v) if v is not None else None
        except (TypeError, ValueError):
            return None

    def text(tag: str) -> str:
        v = _value(meta, tag)
        return str(v) if v is not None else ""

    spacing = _values(meta, "00280030")
    return {
        "sop_class_uid": text("00080016"),
        "manufacturer": text("00080070"),
        "manufacturer_model": text("00081090"),
        "rows": int(num("00280010") or 0),
        "columns": int(num("00280011") or 0),
        "pixel_spacing_row": float(spacing[0]) if len(spacing) == 2 else None,
        "pixel_spacing_col": float(spacing[1]) if len(spacing) == 2 else None,
        "slice_thickness": num("00180050"),
        "magnetic_field_strength": num("00180087"),
        "patient_sex": text("00100040"),
        "patient_age": text("00101010"),
    }


def _parse_date(text: str) -> date | None:
    try:
        return date(int(text[0:4]), int(text[4:6]), int(text[6:8])) if len(text) == 8 else None
    except ValueError:
        return None


def _baselines(rows: list[dict[str, Any]], first_tp: str | None) -> dict[tuple[str, str], date]:
    at_first: dict[tuple[str, str], date] = {}
    earliest: dict[tuple[str, str], date] = {}
    for r in rows:
        d = _parse_date(r["study_date"])
        if d is None:
            continue
        key = (r["site_id"], r["subject"])
        if key not in earliest or d < earliest[key]:
            earliest[key] = d
        at_baseline_visit = first_tp is not None and r["timepoint"] == first_tp
        if at_baseline_visit and (key not in at_first or d < at_first[key]):
            at_first[key] = d
    return {**earliest, **at_first}


def _days(baseline: date | None, study_date: str) -> int | None:
    d = _parse_date(study_date)
    if baseline is None or d is None:
        return None
    return (d - baseline).days
