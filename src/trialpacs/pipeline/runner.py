"""Run one claimed job: the code both executors share.

While the job runs a heartbeat renews its lease; the outcome is written back
to the job table (done, retry with backoff, or needs attention) and, for a
series, to its pipeline state, so a person sees why it stopped. Each run
also leaves an audit entry (de-identification and publication, QC hold, or
the failure), written here in the adapter rather than in the domain code.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid

from sqlalchemy import select

from trialpacs.archive import Archive
from trialpacs.audit import AuditEvent, record
from trialpacs.pipeline import copies, jobs
from trialpacs.pipeline.process import PermanentFailure, mark_attention, process_series
from trialpacs.pipeline.qc import QcHook, load_hook
from trialpacs.pipeline.scheduler import SERIES_JOB
from trialpacs.trials.models import PipelineSeries

log = logging.getLogger(__name__)


def worker_name(kind: str) -> str:
    return f"{kind}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


_HOOKS: dict[str, QcHook] = {}


def hook_for(archive: Archive) -> QcHook:
    spec = archive.settings.qc_hook or ""
    hook = _HOOKS.get(spec)
    if hook is None:
        hook = _HOOKS[spec] = load_hook(spec or None)
    return hook


def run_claimed(archive: Archive, job: jobs.ClaimedJob, worker: str) -> str:
    """Run ``job`` (already claimed by ``worker``); returns the state it ends in."""
    settings = archive.settings
    lease = settings.job_lease_seconds
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(max(lease / 3, 0.2)):
            try:
                if not jobs.renew(archive.db, job.pk, worker, lease):
                    return
            except Exception:  # a missed beat only shortens the lease
                log.exception("lease renewal of job %s failed", job.pk)

    beat = threading.Thread(target=heartbeat, name=f"lease-{job.pk}", daemon=True)
    beat.start()
    try:
        if job.kind != SERIES_JOB:
            raise PermanentFailure(f"unknown job kind {job.kind!r}")
        targets = copies.targets_for_series(archive, job.key)  # refused: before any work
        outcome = process_series(archive, job.key, hook_for(archive))
        if outcome.state == "published":
            copies.copy_published(archive, job.key, targets)
        action = {"published": "pipeline.deidentify_publish", "rejected_qc": "qc.rejected"}.get(
            outcome.state, "qc.hold"
        )
        _audit(archive, job, worker, action, "success", outcome.state, outcome.reason,
               published=outcome.published, copies=[name for name, _ in targets])  # fmt: skip
    except PermanentFailure as exc:
        stop.set()
        jobs.give_up(archive.db, job.pk, worker, str(exc))
        mark_attention(archive, job.key, str(exc))
        _audit(archive, job, worker, "pipeline.deidentify_publish", "failure", "needs_attention",
               str(exc))  # fmt: skip
        log.warning("job %s (%s) needs attention: %s", job.pk, job.key, exc)
        return jobs.ATTENTION
    except Exception as exc:
        stop.set()
        reason = f"{type(exc).__name__}: {exc}"
        state = jobs.fail(archive.db, job.pk, worker, reason, settings.job_backoff_seconds)
        if state == jobs.ATTENTION:
            mark_attention(archive, job.key, f"after {job.attempts} attempts: {reason}")
        log.warning("job %s (%s) failed (attempt %d): %s", job.pk, job.key, job.attempts, reason)
        return state
    finally:
        stop.set()
    jobs.finish(archive.db, job.pk, worker)
    return jobs.DONE


def _audit(
    archive: Archive,
    job: jobs.ClaimedJob,
    worker: str,
    action: str,
    outcome: str,
    state: str,
    reason: str,
    **detail: object,
) -> None:
    with archive.db.read() as session:
        row = session.scalars(
            select(PipelineSeries).where(PipelineSeries.series_uid == job.key)
        ).first()
    record(
        archive.db,
        AuditEvent(
            action=action,
            outcome=outcome,
            actor="system:pipeline",
            agent=worker,
            trial=row.trial_id if row else "",
            site=row.site_id if row else "",
            series=job.key,
            new_value=state,
            reason=reason,
            detail={"job": job.pk, **detail},
        ),
    )


def run_job_number(archive: Archive, job_pk: int, worker: str) -> str | None:
    """Claim and run the given job if it is still runnable (what a Celery task does)."""
    job = jobs.claim(archive.db, worker, archive.settings.job_lease_seconds, job_pk)
    if job is None:
        return None
    return run_claimed(archive, job, worker)
