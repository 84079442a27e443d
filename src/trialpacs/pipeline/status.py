"""Counts per trial and site: received, in progress, published, held for QC, needing
attention, and series without a visit (time point); plus data that matched no trial."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from trialpacs.archive import Archive
from trialpacs.index.models import Series, Study
from trialpacs.pipeline import jobs
from trialpacs.trials.events import recent_events
from trialpacs.trials.models import PUBLISHED, QUARANTINE, UNASSIGNED, Job, PipelineSeries

JOB_STATES = (jobs.PENDING, jobs.RUNNING, jobs.DONE, jobs.ATTENTION)
_EMPTY = {
    "received_instances": 0,
    "received_series": 0,
    "waiting_series": 0,
    "in_progress_series": 0,
    "published_series": 0,
    "published_instances": 0,
    "held_qc_series": 0,
    "needs_attention_series": 0,
    "unassigned_timepoint_series": 0,
}


def pipeline_status(archive: Archive) -> dict[str, Any]:
    rows: dict[tuple[str, str], dict[str, int]] = {}

    visits: dict[tuple[str, str], dict[str, int]] = {}

    def at(trial: str | None, site: str | None) -> dict[str, int]:
        visits.setdefault((trial or "", site or ""), {})
        return rows.setdefault((trial or "", site or ""), dict(_EMPTY))

    with archive.db.read() as session:
        for trial, site, n_inst, n_series in session.execute(
            select(
                Study.trial_id,
                Study.site_id,
                func.coalesce(func.sum(Study.num_instances), 0),
                func.coalesce(func.sum(Study.num_series), 0),
            )
            .where(Study.collection == QUARANTINE)
            .group_by(Study.trial_id, Study.site_id)
        ).all():
            r = at(trial, site)
            r["received_instances"] = int(n_inst)
            r["received_series"] = int(n_series)
        for trial, site, n in session.execute(
            select(Study.trial_id, Study.site_id, func.coalesce(func.sum(Study.num_instances), 0))
            .where(Study.collection == PUBLISHED, Study.trial_id.is_not(None))
            .group_by(Study.trial_id, Study.site_id)
        ).all():
            at(trial, site)["published_instances"] = int(n)
        for trial, site, state, n in session.execute(
            select(
                PipelineSeries.trial_id,
                PipelineSeries.site_id,
                PipelineSeries.state,
                func.count(),
            ).group_by(PipelineSeries.trial_id, PipelineSeries.site_id, PipelineSeries.state)
        ).all():
            key = {
                "queued": "in_progress_series",
                "processing": "in_progress_series",
                "published": "published_series",
                "held_qc": "held_qc_series",
                "needs_attention": "needs_attention_series",
            }.get(state)
            if key:
                at(trial, site)[key] += int(n)
        # Series by visit ('' = unassigned), once the pipeline has looked at them.
        for trial, site, tp, n in session.execute(
            select(
                PipelineSeries.trial_id,
                PipelineSeries.site_id,
                PipelineSeries.timepoint_id,
                func.count(),
            )
            .where(PipelineSeries.state != "queued")
            .group_by(PipelineSeries.trial_id, PipelineSeries.site_id, PipelineSeries.timepoint_id)
        ).all():
            at(trial, site)
            visits[(trial or "", site or "")][tp or ""] = int(n)
            if not tp:
                at(trial, site)["unassigned_timepoint_series"] += int(n)
        for r in rows.values():
            tracked = (
                r["in_progress_series"]
                + r["published_series"]
                + r["held_qc_series"]
                + r["needs_attention_series"]
            )
            r["waiting_series"] = max(r["received_series"] - tracked, 0)
        attention = [
            {
                "trial": p.trial_id,
                "site": p.site_id,
                "series": p.series_uid,
                "state": p.state,
                "reason": p.reason,
            }
            for p in session.scalars(
                select(PipelineSeries).where(
                    PipelineSeries.state.in_(("needs_attention", "held_qc"))
                )
            )
        ]
        unassigned_sites = session.execute(
            select(
                Study.site_id,
                func.count(Series.pk),
                func.coalesce(func.sum(Series.num_instances), 0),
            )
            .join(Study, Study.pk == Series.study_pk)
            .where(Study.collection == UNASSIGNED)
            .group_by(Study.site_id)
        ).all()
        job_counts = {
            r[0]: r[1] for r in session.execute(select(Job.state, func.count()).group_by(Job.state))
        }
    return {
        "trials": [
            {"trial": trial, "site": site, **counts, "timepoints": visits.get((trial, site), {})}
            for (trial, site), counts in sorted(rows.items())
        ],
        # Data that matched no trial, by the site it came from ('' = unknown caller).
        "unassigned": {
            "series": sum(int(r[1]) for r in unassigned_sites),
            "instances": sum(int(r[2]) for r in unassigned_sites),
            "by_site": {
                (site or ""): {"series": int(n), "instances": int(i)}
                for site, n, i in unassigned_sites
            },
        },
        "jobs": {s: int(job_counts.get(s, 0)) for s in JOB_STATES},
        "attention": attention,
        "recent_events": recent_events(archive.db, limit=20),
    }
