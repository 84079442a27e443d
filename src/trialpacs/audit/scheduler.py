"""Signed checkpoints on a timer, inside ``trialpacs serve``.

Every ``audit_checkpoint_interval`` seconds the chain head is signed
(``checkpoints.checkpoint``) if anything was appended since the last
checkpoint, so an idle server does not fill the trail with checkpoints of
checkpoints. Several servers on one database each run a timer; the
checkpoints they write are all valid, just more frequent.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select

from trialpacs.audit import checkpoints
from trialpacs.audit.models import AuditChainHead, AuditCheckpoint
from trialpacs.index.db import Database

log = logging.getLogger("trialpacs.audit")


def due(db: Database) -> bool:
    """True when entries other than the last checkpoint's own were appended since it."""
    with db.read() as session:
        head = session.get(AuditChainHead, 1)
        last = session.scalar(select(func.max(AuditCheckpoint.seq)))
    if head is None or head.seq == 0:
        return False
    # The checkpoint's own entry is appended just before it signs, so a
    # checkpoint at seq N leaves the head at N.
    return last is None or head.seq > last


def checkpoint_if_due(db: Database, data_dir: Path) -> dict[str, object] | None:
    if not due(db):
        return None
    return checkpoints.checkpoint(db, data_dir)


@dataclass
class CheckpointTimer:
    db: Database
    data_dir: Path
    interval: float
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> CheckpointTimer:
        self._thread = threading.Thread(target=self._run, name="audit-checkpoints", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                cp = checkpoint_if_due(self.db, self.data_dir)
            except Exception:  # the next tick tries again; the failure is loud
                log.exception("audit checkpoint failed")
                continue
            if cp is not None:
                log.info("audit checkpoint at entry %s", cp["seq"])

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


def start(db: Database, data_dir: Path, interval: float | None) -> CheckpointTimer | None:
    """The running timer, or None when checkpoints are off (interval 0 or None)."""
    if not interval or interval <= 0:
        return None
    return CheckpointTimer(db, data_dir, float(interval)).start()
