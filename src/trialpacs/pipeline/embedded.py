"""The embedded executor: worker threads in the server process over the job table.

Also hosts the scheduler loop, which runs in every server whatever the
executor: it queues complete series and, with Celery, sends runnable jobs to
the broker.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from trialpacs.archive import Archive
from trialpacs.pipeline import jobs
from trialpacs.pipeline.runner import run_claimed, worker_name
from trialpacs.pipeline.scheduler import schedule

log = logging.getLogger(__name__)
TICK = 0.25


class Pipeline:
    """Scheduler thread plus (embedded) worker threads; ``stop()`` lets running jobs end."""

    def __init__(
        self,
        archive: Archive,
        *,
        workers: int,
        dispatch: Callable[[int], None] | None = None,
    ) -> None:
        self.archive = archive
        self.n_workers = workers if dispatch is None else 0
        self.dispatch = dispatch
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> Pipeline:
        threads = [
            threading.Thread(target=self._schedule_loop, name="pipeline-scheduler"),
            threading.Thread(target=warm_up, name="pipeline-warm-up"),
        ]
        threads += [
            threading.Thread(target=self._work_loop, name=f"pipeline-worker-{i}")
            for i in range(self.n_workers)
        ]
        for t in threads:
            t.daemon = True
            t.start()
        self._threads = threads
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout)

    def _schedule_loop(self) -> None:
        while not self._stop.is_set():
            try:
                if schedule(self.archive):
                    self._wake.set()
                if self.dispatch is not None:
                    self._send_runnable()
            except Exception:
                log.exception("pipeline scheduler tick failed")
            self._stop.wait(TICK)

    def _send_runnable(self) -> None:
        assert self.dispatch is not None
        hold = self.archive.settings.job_lease_seconds
        for pk in jobs.runnable(self.archive.db):
            if jobs.mark_dispatched(self.archive.db, pk, hold):
                try:
                    self.dispatch(pk)
                except Exception:
                    log.exception("cannot send job %s to the broker; will retry", pk)

    def _work_loop(self) -> None:
        worker = worker_name("embedded")
        lease = self.archive.settings.job_lease_seconds
        while not self._stop.is_set():
            try:
                job = jobs.claim(self.archive.db, worker, lease)
            except Exception:
                log.exception("claiming a job failed")
                job = None
            if job is None:
                self._wake.wait(TICK)
                self._wake.clear()
                continue
            run_claimed(self.archive, job, worker)


def warm_up() -> None:
    """Load the free-text NER model now, not inside the first job (seconds of latency)."""
    try:
        from trialpacs.deid.freetext import ner_available

        ner_available()
    except Exception:  # NER is optional; the deid library reports it when used
        log.debug("NER warm-up failed", exc_info=True)


def start(archive: Archive) -> Pipeline | None:
    """Start what the settings ask for; called by ``trialpacs serve``."""
    mode = archive.settings.pipeline_executor
    if mode == "off":
        return None
    if mode == "celery":
        from trialpacs.pipeline.celery_app import sender

        return Pipeline(archive, workers=0, dispatch=sender(archive.settings)).start()
    return Pipeline(archive, workers=archive.settings.pipeline_workers).start()
