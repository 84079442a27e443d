"""Notice complete series and queue their jobs.

Completeness is read from the index itself: ``series.updated_at`` moves with
every stored instance and ``series.num_instances`` counts them, both in the
same transaction as the store. So a series is due when it is in quarantine,
quiet for the settle interval, and holds more instances than the pipeline
has seen; nothing extra has to be written at intake, and a crash between a
store and anything else cannot make the pipeline miss a series.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import and_, or_, select

from trialpacs.archive import Archive
from trialpacs.index.models import Instance, Series, Study, utcnow
from trialpacs.pipeline import jobs
from trialpacs.trials.models import QUARANTINE, Job, PipelineSeries

SERIES_JOB = "series"


def due_series(
    archive: Archive, settle_seconds: float, series_uids: Sequence[str] | None = None
) -> list[tuple[str, str, str, str, int]]:
    """(series, study, trial, site, instances) of quarantined series ready for a job."""
    cutoff = utcnow() - timedelta(seconds=settle_seconds)
    stmt = (
        select(
            Series.series_uid,
            Study.study_uid,
            Study.trial_id,
            Study.site_id,
            Series.num_instances,
        )
        .join(Study, Study.pk == Series.study_pk)
        .outerjoin(PipelineSeries, PipelineSeries.series_uid == Series.series_uid)
        .outerjoin(
            Job,
            and_(
                Job.kind == SERIES_JOB,
                Job.key == Series.series_uid,
                Job.state.in_((jobs.PENDING, jobs.RUNNING)),
            ),
        )
        .where(
            Study.collection == QUARANTINE,
            Study.trial_id.is_not(None),
            Job.pk.is_(None),
            or_(
                PipelineSeries.pk.is_(None),
                PipelineSeries.seen_instances < Series.num_instances,
            ),
        )
    )
    if series_uids is None:
        stmt = stmt.where(Series.updated_at <= cutoff)
    else:
        stmt = stmt.where(Series.series_uid.in_(list(series_uids)))
    with archive.db.read() as session:
        return [tuple(row) for row in session.execute(stmt.limit(1000)).all()]  # type: ignore[misc]


def queue(archive: Archive, due: list[tuple[str, str, str, str, int]]) -> int:
    for series_uid, study_uid, trial_id, site_id, count in due:
        with archive.db.write() as session:
            row = session.scalars(
                select(PipelineSeries).where(PipelineSeries.series_uid == series_uid)
            ).first()
            if row is None:
                session.add(
                    PipelineSeries(
                        series_uid=series_uid,
                        study_uid=study_uid,
                        trial_id=trial_id,
                        site_id=site_id,
                        state="queued",
                        seen_instances=count,
                        published_instances=0,
                        reason="",
                    )
                )
            else:
                row.state, row.seen_instances, row.reason = "queued", count, ""
                row.updated_at = utcnow()
        jobs.enqueue(
            archive.db,
            SERIES_JOB,
            series_uid,
            {"series_uid": series_uid},
            max_attempts=archive.settings.job_max_attempts,
        )
    return len(due)


def schedule(archive: Archive) -> int:
    """Queue every series that has been quiet for the settle interval."""
    return queue(archive, due_series(archive, archive.settings.series_settle_seconds))


def request_now(archive: Archive, sop_uids: Sequence[str]) -> int:
    """A storage commitment request says the sender is done: queue those series now."""
    with archive.db.read() as session:
        series = list(
            session.scalars(
                select(Series.series_uid)
                .distinct()
                .join(Instance, Instance.series_pk == Series.pk)
                .where(Instance.sop_uid.in_(list(sop_uids)))
            )
        )
    return queue(archive, due_series(archive, 0, series)) if series else 0


def retry_series(archive: Archive, series_uid: str) -> bool:
    """Send a series that needs attention (or is held) through the pipeline again."""
    with archive.db.write() as session:
        row = session.scalars(
            select(PipelineSeries).where(PipelineSeries.series_uid == series_uid)
        ).first()
        if row is None:
            return False
        row.seen_instances = 0
    return bool(queue(archive, due_series(archive, 0, [series_uid])))
