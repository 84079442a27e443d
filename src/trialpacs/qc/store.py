"""Reading and writing QC rows: results, the batch reference, decisions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import or_, select

from trialpacs.index.db import Database
from trialpacs.index.models import utcnow
from trialpacs.qc.models import QcSeries
from trialpacs.qc.outliers import Stratum

REFERENCE_LIMIT = 500


def trial_qc(db: Database, trial_id: str) -> dict[str, Any]:
    """The keys the trial's ``qc:`` configuration block sets (``{}`` for none or no trial)."""
    from trialpacs.trials.models import Trial

    with db.read() as session:
        text = session.scalar(select(Trial.qc).where(Trial.trial_id == trial_id))
    value = json.loads(text or "{}")
    return value if isinstance(value, dict) else {}


def decision(db: Database, series_uid: str) -> str:
    with db.read() as session:
        value = session.scalar(select(QcSeries.decision).where(QcSeries.series_uid == series_uid))
    return value or ""


@dataclass(frozen=True)
class Reference:
    label: str
    vectors: list[NDArray[Any]]


def reference(
    db: Database, trial_id: str, stratum: Stratum, exclude: str, min_stratum: int
) -> Reference:
    """The trial's earlier accepted series to compare with: same stratum, else modality, else all.

    Held series waiting for a decision and rejected ones are left out, so a run of
    wrong series cannot become the norm.
    """
    accepted = or_(
        (QcSeries.verdict == "pass") & (QcSeries.decision != "rejected"),
        QcSeries.decision == "approved",
    )
    base = (
        select(QcSeries.features, QcSeries.stratum)
        .where(QcSeries.trial_id == trial_id, QcSeries.series_uid != exclude)
        .where(QcSeries.features.is_not(None), accepted)
        .order_by(QcSeries.pk.desc())
        .limit(REFERENCE_LIMIT * 4)
    )
    with db.read() as session:
        rows = session.execute(base).all()
    vectors = [(np.frombuffer(r.features, np.float32), Stratum.parse(r.stratum)) for r in rows]
    same = [v for v, s in vectors if s == stratum][:REFERENCE_LIMIT]
    if len(same) >= min_stratum:
        return Reference(stratum.key(), same)
    modality = [v for v, s in vectors if s.modality == stratum.modality][:REFERENCE_LIMIT]
    if len(modality) >= min_stratum:
        return Reference(f"{stratum.modality} (all)", modality)
    return Reference("whole trial", [v for v, _ in vectors][:REFERENCE_LIMIT])


def save_result(db: Database, series_uid: str, **values: object) -> None:
    """Insert or update the row of ``series_uid``; a decision already taken is kept."""
    if "reasons" in values:
        values["reasons"] = json.dumps(list(values["reasons"]))  # type: ignore[call-overload]
    with db.write() as session:
        row = session.scalars(select(QcSeries).where(QcSeries.series_uid == series_uid)).first()
        if row is None:
            session.add(QcSeries(series_uid=series_uid, **values))
            return
        for key, value in values.items():
            setattr(row, key, value)
        row.updated_at = utcnow()
