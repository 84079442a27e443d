"""The durable job table: enqueue, claim with a lease, finish, retry with backoff.

A claim is one conditional UPDATE (compare-and-set on state and lease), so
any number of threads, processes and machines can poll the same table and a
job runs on one of them at a time. A worker that dies stops renewing its
lease; when the lease runs out the job is claimable again, which is how a
SIGKILL mid-run turns into a resumed job rather than a lost one.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select, update

from trialpacs.index.db import Database
from trialpacs.index.models import utcnow
from trialpacs.trials.models import Job

PENDING = "pending"
RUNNING = "running"
DONE = "done"
ATTENTION = "needs_attention"


@dataclass(frozen=True)
class ClaimedJob:
    pk: int
    kind: str
    key: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int


def enqueue(
    db: Database, kind: str, key: str, payload: dict[str, Any] | None = None, *, max_attempts: int
) -> int:
    """Create the job, or make a finished one pending again; returns its number."""
    now = time.time()
    with db.write() as session:
        job = session.scalars(select(Job).where(Job.kind == kind, Job.key == key)).first()
        if job is None:
            job = Job(
                kind=kind,
                key=key,
                payload=json.dumps(payload or {}),
                state=PENDING,
                attempts=0,
                max_attempts=max_attempts,
                run_after=now,
                lease_until=0.0,
                locked_by="",
                last_error="",
            )
            session.add(job)
            session.flush()
        elif job.state in (DONE, ATTENTION):
            job.state = PENDING
            job.attempts = 0
            job.max_attempts = max_attempts
            job.run_after = now
            job.lease_until = 0.0
            job.locked_by = ""
            job.last_error = ""
            job.payload = json.dumps(payload or {})
            job.updated_at = utcnow()
        return int(job.pk)


def _claimable(now: float) -> Any:
    return or_(
        and_(Job.state == PENDING, Job.run_after <= now),
        and_(Job.state == RUNNING, Job.lease_until < now),
    )


def claim(
    db: Database, worker: str, lease_seconds: float, job_pk: int | None = None
) -> ClaimedJob | None:
    """Take one runnable job (or the given one); None if there is none."""
    now = time.time()
    with db.read() as session:
        stmt = select(Job.pk).where(_claimable(now))
        if job_pk is not None:
            stmt = stmt.where(Job.pk == job_pk)
        candidates = list(session.scalars(stmt.order_by(Job.run_after, Job.pk).limit(8)))
    for pk in candidates:
        with db.write() as session:
            result = session.execute(
                update(Job)
                .where(Job.pk == pk, _claimable(now))
                .values(
                    state=RUNNING,
                    locked_by=worker,
                    lease_until=now + lease_seconds,
                    attempts=Job.attempts + 1,
                    updated_at=utcnow(),
                )
            )
            if getattr(result, "rowcount", 0) != 1:
                continue
            job = session.get(Job, pk)
            assert job is not None
            return ClaimedJob(
                pk=job.pk,
                kind=job.kind,
                key=job.key,
                payload=json.loads(job.payload or "{}"),
                attempts=job.attempts,
                max_attempts=job.max_attempts,
            )
    return None


def renew(db: Database, pk: int, worker: str, lease_seconds: float) -> bool:
    """Extend our lease; False if the job is no longer ours (taken over)."""
    with db.write() as session:
        result = session.execute(
            update(Job)
            .where(Job.pk == pk, Job.locked_by == worker, Job.state == RUNNING)
            .values(lease_until=time.time() + lease_seconds)
        )
    return getattr(result, "rowcount", 0) == 1


def finish(db: Database, pk: int, worker: str) -> None:
    _set(db, pk, worker, state=DONE, last_error="")


def give_up(db: Database, pk: int, worker: str, reason: str) -> None:
    """Needs attention now (the failure is one that retrying cannot fix)."""
    _set(db, pk, worker, state=ATTENTION, last_error=reason)


def fail(db: Database, pk: int, worker: str, reason: str, backoff_seconds: float) -> str:
    """Retry later (doubling delay), or needs attention after the last attempt."""
    with db.read() as session:
        job = session.get(Job, pk)
        attempts, max_attempts = (job.attempts, job.max_attempts) if job else (0, 0)
    if attempts >= max_attempts:
        _set(db, pk, worker, state=ATTENTION, last_error=f"after {attempts} attempts: {reason}")
        return ATTENTION
    delay = backoff_seconds * (2 ** max(attempts - 1, 0))
    _set(db, pk, worker, state=PENDING, last_error=reason, run_after=time.time() + delay)
    return PENDING


def _set(db: Database, pk: int, worker: str, **values: Any) -> None:
    with db.write() as session:
        session.execute(
            update(Job)
            .where(Job.pk == pk, Job.locked_by == worker)
            .values(lease_until=0.0, updated_at=utcnow(), **values)
        )


def runnable(db: Database, limit: int = 100) -> list[int]:
    """Jobs a dispatcher should hand to a worker now."""
    now = time.time()
    with db.read() as session:
        stmt = select(Job.pk).where(_claimable(now)).order_by(Job.run_after, Job.pk).limit(limit)
        return list(session.scalars(stmt))


def mark_dispatched(db: Database, pk: int, hold_seconds: float) -> bool:
    """Note a job as sent to Celery so it is not re-sent until ``hold_seconds`` pass.

    A pending job's lease_until is unused, so it doubles as "dispatched until";
    a lost message (a worker killed before claiming) is re-sent when it expires.
    """
    now = time.time()
    with db.write() as session:
        result = session.execute(
            update(Job)
            .where(
                Job.pk == pk,
                or_(
                    and_(Job.state == PENDING, Job.run_after <= now, Job.lease_until < now),
                    and_(Job.state == RUNNING, Job.lease_until < now),
                ),
            )
            # A running job whose worker died becomes pending again: the message
            # we send now is its new chance.
            .values(state=PENDING, locked_by="", lease_until=now + hold_seconds)
        )
    return getattr(result, "rowcount", 0) == 1
