"""Celery transport for pipeline jobs (``trialpacs worker``).

Messages carry only a job number; the worker claims that row in the job table
and runs the same :func:`trialpacs.pipeline.runner.run_claimed` as the
embedded pool. Duplicate or lost messages are therefore harmless: a claim
succeeds once, and the server's dispatcher re-sends jobs whose message was
lost once their dispatch hold expires.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from celery import Celery
from celery.signals import worker_process_init

from trialpacs.archive import Archive
from trialpacs.settings import Settings, load_settings

TASK = "trialpacs.pipeline.run_job"

app = Celery("trialpacs")
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
)

_ARCHIVE: dict[int, Archive] = {}
_LOCK = threading.Lock()


def _archive() -> Archive:
    """One Archive per worker process, opened after the fork (connections don't fork)."""
    pid = os.getpid()
    with _LOCK:
        archive = _ARCHIVE.get(pid)
        if archive is None:
            archive = Archive.open(load_settings(), migrate=False)
            _ARCHIVE[pid] = archive
        return archive


@worker_process_init.connect
def _warm_up(**_: Any) -> None:
    from trialpacs.pipeline.embedded import warm_up

    warm_up()


@app.task(name=TASK, ignore_result=True)
def run_job(job_pk: int) -> str | None:
    from trialpacs.pipeline.runner import run_job_number, worker_name

    return run_job_number(_archive(), int(job_pk), worker_name("celery"))


def configure(settings: Settings) -> Celery:
    app.conf.broker_url = settings.celery_broker_url
    return app


def sender(settings: Settings) -> Callable[[int], None]:
    configure(settings)

    def send(job_pk: int) -> None:
        app.send_task(TASK, args=[job_pk], queue=settings.celery_queue)

    return send


def run_worker(settings: Settings, concurrency: int, pool: str, loglevel: str = "info") -> Any:
    configure(settings)
    argv = [
        "worker",
        f"--concurrency={concurrency}",
        f"--pool={pool}",
        f"--loglevel={loglevel}",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "-Q",
        settings.celery_queue,
    ]
    if settings.log_format == "json":
        from celery.signals import setup_logging

        from trialpacs.ops import logs

        # A receiver on setup_logging makes Celery leave logging to us (JSON, no PHI);
        # --quiet drops the start-up banner, which is printed, not logged.
        setup_logging.connect(lambda **_: logs.configure("json", loglevel), weak=False)
        argv.insert(0, "--quiet")
    return app.worker_main(argv)
