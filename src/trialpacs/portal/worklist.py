"""The studies a caller may see, filtered the way a reviewer asks for them.

Visibility comes from the policy's SQL condition (``study_condition``), so a
study outside the caller's grants is never loaded, and identified
(quarantine) rows appear only for roles allowed to read them. Patient names
are carried only for those identified rows; published rows show the trial's
subject pseudonym (the de-identified Patient ID).
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field

import orjson
from sqlalchemy import ColumnElement, Select, and_, exists, select
from sqlalchemy.orm import Session

from trialpacs.access.policy import Principal
from trialpacs.access.visibility import study_condition
from trialpacs.errors import InvalidInput, NotFound
from trialpacs.index.db import Database
from trialpacs.index.models import Instance, Series, Study
from trialpacs.trials.models import PUBLISHED, PipelineSeries

TIMEPOINT_TAG = "00120050"
MAX_ROWS = 200
STATUSES = ("published", "received", "queued", "processing", "held_qc", "needs_attention")
# An identified study shows the least advanced state of its series, in this order.
PRECEDENCE = ("needs_attention", "held_qc", "processing", "queued", "published")
_DATE_RE = re.compile(r"^\d{4}-?\d{2}-?\d{2}$")
_TEXT_RE = re.compile(r"^[\w .^*?-]{0,64}$")


@dataclass(frozen=True)
class Filters:
    """What the worklist form sends; every value is validated on construction."""

    trial: str = ""
    site: str = ""
    subject: str = ""
    timepoint: str = ""
    modality: str = ""
    date_from: str = ""
    date_to: str = ""
    status: str = ""
    limit: int = 50
    offset: int = 0

    def __post_init__(self) -> None:
        for name in ("trial", "site", "subject", "timepoint", "modality"):
            value = getattr(self, name)
            if not _TEXT_RE.match(value):
                raise InvalidInput(f"{name} {value[:20]!r} has characters a filter cannot hold")
        for name in ("date_from", "date_to"):
            value = getattr(self, name)
            if value and not _DATE_RE.match(value):
                raise InvalidInput(f"{name} must be a date like 2024-05-31, not {value[:20]!r}")
        if self.status and self.status not in STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(STATUSES)}")
        if not 1 <= self.limit <= MAX_ROWS:
            raise InvalidInput(f"limit must be between 1 and {MAX_ROWS}")
        if self.offset < 0:
            raise InvalidInput("offset must not be negative")


@dataclass(frozen=True)
class Row:
    study_uid: str
    trial: str
    site: str
    subject: str
    timepoint: str
    modalities: str
    date: str
    description: str
    series: int
    instances: int
    status: str
    identified: bool
    patient_name: str = ""  # only on identified rows, which only PHI roles can see
    first_series: str = ""
    first_sop: str = ""


@dataclass(frozen=True)
class Page:
    rows: list[Row]
    more: bool
    filters: Filters
    trials: list[str] = field(default_factory=list)


def _visible(principal: Principal) -> ColumnElement[bool] | None:
    return study_condition(principal, "read")


def _statement(filters: Filters, visible: ColumnElement[bool] | None) -> Select[Study]:
    stmt = select(Study)
    if visible is not None:
        stmt = stmt.where(visible)
    conds: list[ColumnElement[bool]] = []
    if filters.trial:
        conds.append(Study.trial_id == filters.trial)
    if filters.site:
        conds.append(Study.site_id == filters.site)
    if filters.subject:
        # Only pseudonyms are searched: an identified patient ID would end up in the URL.
        conds.append(Study.patient_id.like(_like(filters.subject), escape="\\"))
        conds.append(Study.collection == PUBLISHED)
    if filters.timepoint:
        # studies.timepoint_id is indexed with trial_id; the ID is matched exactly.
        conds.append(Study.timepoint_id == filters.timepoint)
    if filters.modality:
        conds.append(Study.modalities.like(f"%{filters.modality.upper()}%"))
    if filters.date_from:
        conds.append(Study.study_date >= filters.date_from.replace("-", ""))
    if filters.date_to:
        conds.append(Study.study_date <= filters.date_to.replace("-", ""))
    if filters.status == "published":
        conds.append(Study.collection == PUBLISHED)
    elif filters.status:
        conds.append(Study.collection != PUBLISHED)
        conds.append(_has_status(filters.status))
    if conds:
        stmt = stmt.where(and_(*conds))
    return stmt.order_by(Study.study_date.desc(), Study.pk.desc())


def _has_status(status: str) -> ColumnElement[bool]:
    """SQL for "the study's shown status is ``status``" (see ``_status``).

    The status is the first state of ``PRECEDENCE`` that any of the study's
    series is in, or ``received`` when none is: so a study has status S when
    one series is in S and none is in a state ranked before S. Evaluated in
    SQL so paging stays right however many studies are in the quarantine.
    """

    def any_in(states: tuple[str, ...]) -> ColumnElement[bool]:
        return exists().where(
            PipelineSeries.study_uid == Study.study_uid, PipelineSeries.state.in_(states)
        )

    if status == "received":
        return ~any_in(PRECEDENCE)
    before = PRECEDENCE[: PRECEDENCE.index(status)]
    found = any_in((status,))
    return and_(found, ~any_in(before)) if before else found


def _like(text: str) -> str:
    escaped = text.replace("%", "").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def search(db: Database, principal: Principal, filters: Filters) -> Page:
    visible = _visible(principal)
    with db.read() as session:
        stmt = _statement(filters, visible).offset(filters.offset).limit(filters.limit + 1)
        rows = [_row(session, s) for s in session.scalars(stmt).all()]
        trials = sorted(
            t for t in session.scalars(_trials_statement(visible)).all() if t is not None
        )
    more = len(rows) > filters.limit
    return Page(rows[: filters.limit], more, filters, trials)


def _trials_statement(visible: ColumnElement[bool] | None) -> Select[str | None]:
    stmt = select(Study.trial_id).distinct()
    return stmt.where(visible) if visible is not None else stmt


def _row(session: Session, study: Study) -> Row:
    first = session.execute(
        select(Series.series_uid, Instance.sop_uid, Instance.metadata_json)
        .join(Instance, Instance.series_pk == Series.pk)
        .where(Series.study_pk == study.pk)
        .order_by(Series.series_number, Series.pk, Instance.instance_number, Instance.pk)
        .limit(1)
    ).first()
    timepoint = study.timepoint_id
    series_uid = sop_uid = ""
    if first is not None:
        series_uid, sop_uid, blob = first
        timepoint = study.timepoint_id or _timepoint(blob)
    identified = study.collection != PUBLISHED
    return Row(
        study_uid=study.study_uid,
        trial=study.trial_id or "",
        site=study.site_id or "",
        subject=study.patient_id,
        timepoint=timepoint,
        modalities=study.modalities.replace("\\", " "),
        date=_date(study.study_date),
        description=study.study_description,
        series=study.num_series,
        instances=study.num_instances,
        status=_status(session, study) if identified else "published",
        identified=identified,
        patient_name=study.patient_name.replace("^", " ").strip() if identified else "",
        first_series=series_uid,
        first_sop=sop_uid,
    )


def _timepoint(blob: bytes) -> str:
    attrs = orjson.loads(zlib.decompress(blob))
    values = attrs.get(TIMEPOINT_TAG, {}).get("Value") or [""]
    return str(values[0])


def _date(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 else value


def _status(session: Session, study: Study) -> str:
    """An identified study's pipeline state: the least advanced of its series."""
    states = set(
        session.scalars(
            select(PipelineSeries.state).where(PipelineSeries.study_uid == study.study_uid)
        ).all()
    )
    for state in PRECEDENCE:
        if state in states:
            return state
    return "received"


def get_study(db: Database, principal: Principal, study_uid: str) -> tuple[Row, list[SeriesRow]]:
    """One visible study with its series; a refused study is as missing as an absent one."""
    visible = _visible(principal)
    with db.read() as session:
        stmt = select(Study).where(Study.study_uid == study_uid)
        stmt = stmt.where(visible if visible is not None else Study.pk.is_not(None))
        study = session.scalars(stmt).first()
        if study is None:
            raise NotFound("no such study")
        row = _row(session, study)
        series = _series(session, study.pk)
    return row, series


@dataclass(frozen=True)
class SeriesRow:
    series_uid: str
    number: int | None
    modality: str
    description: str
    body_part: str
    instances: int
    first_sop: str


def _series(session: Session, study_pk: int) -> list[SeriesRow]:
    out: list[SeriesRow] = []
    rows = session.execute(
        select(Series).where(Series.study_pk == study_pk).order_by(Series.series_number, Series.pk)
    ).scalars()
    for s in rows:
        sop = session.scalars(
            select(Instance.sop_uid)
            .where(Instance.series_pk == s.pk)
            .order_by(Instance.instance_number, Instance.pk)
            .limit(1)
        ).first()
        out.append(
            SeriesRow(
                s.series_uid,
                s.series_number,
                s.modality,
                s.series_description,
                s.body_part,
                s.num_instances,
                sop or "",
            )
        )
    return out
