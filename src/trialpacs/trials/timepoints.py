"""Which visit (time point) of its trial a study belongs to.

A study's visit is decided, in this order, by:

1. ``request``: the intake named it (STOW ``?timepoint=``, ``import
   --timepoint``); stored on the identified study at intake.
2. ``data``: the study's own ClinicalTrialTimePointID (0012,0050), if it is a
   time point of the trial.
3. ``study``: another series of the same study was already assigned (a study
   is one visit; its series never disagree).
4. ``rule``: the study date falls in a time point's ``window_days`` counted
   from the subject's baseline study. The baseline study is the subject's
   study assigned to the trial's first time point, else the subject's
   earliest study in the trial (same site, same Patient ID).

Otherwise the study stays unassigned (``''``): it is still published, and
``trialpacs status`` counts it so someone can name the visit and retry.
Deciding happens when the series job runs, not at intake, so a baseline that
arrives later than a follow-up is taken into account by the next job.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import date

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from trialpacs.archive import Archive
from trialpacs.errors import InvalidInput
from trialpacs.index.models import Instance, Study
from trialpacs.trials.catalog import TimePointInfo, TrialInfo
from trialpacs.trials.models import QUARANTINE, PipelineSeries

TIMEPOINT_TAG = "00120050"  # ClinicalTrialTimePointID


@dataclass(frozen=True)
class Assignment:
    timepoint: TimePointInfo | None
    source: str = ""  # request | data | study | rule | ''
    note: str = ""  # why it is unassigned, when it is

    @property
    def timepoint_id(self) -> str:
        return self.timepoint.timepoint_id if self.timepoint else ""


UNASSIGNED = Assignment(None)


def require_timepoint(trial: TrialInfo, timepoint_id: str) -> str:
    """An intake-named visit must be one the trial declares (clear error otherwise)."""
    value = timepoint_id.strip()
    known = [t.timepoint_id for t in trial.timepoints]
    if value not in known:
        listed = ", ".join(known) or "none are configured"
        raise InvalidInput(
            f"trial {trial.trial_id} has no time point {value!r} (known time points: {listed})"
        )
    return value


def _find(trial: TrialInfo, timepoint_id: str) -> TimePointInfo | None:
    return next((t for t in trial.timepoints if t.timepoint_id == timepoint_id), None)


def _date(value: str) -> date | None:
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:8])) if len(value) >= 8 else None
    except ValueError:
        return None


def resolve(archive: Archive, trial: TrialInfo, study_uid: str) -> Assignment:
    """The visit of an identified study of ``trial`` (see the module docstring)."""
    if not trial.timepoints:
        return UNASSIGNED
    with archive.db.read() as session:
        study = session.execute(
            select(
                Study.pk, Study.timepoint_id, Study.patient_id, Study.site_id, Study.study_date
            ).where(Study.study_uid == study_uid, Study.collection == QUARANTINE)
        ).first()
        if study is None:
            return Assignment(None, note=f"study {study_uid} is not in quarantine")
        notes: list[str] = []
        if study.timepoint_id:
            found = _find(trial, study.timepoint_id)
            if found is not None:
                data_value = _data_value(session, study.pk)
                return Assignment(found, "data" if data_value == study.timepoint_id else "request")
            notes.append(f"ClinicalTrialTimePointID {study.timepoint_id!r} is not a time point")
        sibling = session.scalar(
            select(PipelineSeries.timepoint_id)
            .where(PipelineSeries.study_uid == study_uid, PipelineSeries.timepoint_id != "")
            .limit(1)
        )
        if sibling and (found := _find(trial, sibling)) is not None:
            return Assignment(found, "study")
        windows = [t for t in trial.timepoints if t.window_days is not None]
        if not windows:
            notes.append("no time point has window_days")
            return Assignment(None, note="; ".join(notes))
        when = _date(study.study_date)
        if when is None:
            notes.append("the study has no StudyDate for the window rule")
            return Assignment(None, note="; ".join(notes))
        baseline = _baseline(session, trial, study.patient_id, study.site_id)
        if baseline is None:
            notes.append("the subject has no dated baseline study")
            return Assignment(None, note="; ".join(notes))
        offset = (when - baseline).days
        for tp in windows:
            assert tp.window_days is not None
            lo, hi = tp.window_days
            if lo <= offset <= hi:
                return Assignment(tp, "rule")
        notes.append(f"day {offset} after baseline is in no time point's window")
        return Assignment(None, note="; ".join(notes))


def _data_value(session: Session, study_pk: int) -> str:
    """ClinicalTrialTimePointID as sent, from the stored metadata of one instance."""
    blob = session.scalar(
        select(Instance.metadata_json).where(Instance.study_pk == study_pk).limit(1)
    )
    if blob is None:
        return ""
    element = orjson.loads(zlib.decompress(blob)).get(TIMEPOINT_TAG) or {}
    values = element.get("Value") or [""]
    return str(values[0]).strip()


def _baseline(
    session: Session, trial: TrialInfo, patient_id: str, site_id: str | None
) -> date | None:
    """The date of the subject's baseline study (see the module docstring)."""
    rows = session.execute(
        select(Study.study_uid, Study.study_date, Study.timepoint_id).where(
            Study.collection == QUARANTINE,
            Study.trial_id == trial.trial_id,
            Study.site_id == site_id,
            Study.patient_id == patient_id,
        )
    ).all()
    first = trial.timepoints[0].timepoint_id
    dated = [(uid, d, tp) for uid, raw, tp in rows if (d := _date(raw)) is not None]
    if not dated:
        return None
    declared = [d for _, d, tp in dated if tp == first]
    if declared:
        return min(declared)
    assigned = set(
        session.scalars(
            select(PipelineSeries.study_uid).where(
                PipelineSeries.study_uid.in_([uid for uid, _, _ in dated]),
                PipelineSeries.timepoint_id == first,
            )
        )
    )
    by_pipeline = [d for uid, d, _ in dated if uid in assigned]
    return min(by_pipeline) if by_pipeline else min(d for _, d, _ in dated)
