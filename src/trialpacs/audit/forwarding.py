"""Syslog forwarding on a timer, inside ``trialpacs serve`` (the pattern of ``scheduler``).

Every ``audit_syslog_interval`` seconds the entries after the forwarding
cursor go to the collector (``syslog.forward``). The audit table is the
queue, so a collector outage only delays them: the tick logs a warning and
the next one resends from the cursor, in ``seq`` order. Only one process
should forward per data directory: the cursor file lives there, and two
forwarders sharing it would send entries twice (at-least-once, detectable by
``seq`` at the collector).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from trialpacs.audit.syslog import Collector, forward
from trialpacs.index.db import Database
from trialpacs.settings import Settings

log = logging.getLogger("trialpacs.audit")


@dataclass
class ForwardTimer:
    db: Database
    data_dir: Path
    collector: Collector
    interval: float
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _down: bool = False

    def start(self) -> ForwardTimer:
        self._thread = threading.Thread(target=self._run, name="audit-syslog", daemon=True)
        self._thread.start()
        return self

    def tick(self) -> int:
        """Forward what is pending; 0 and a warning (once per outage) when the collector is down."""
        try:
            sent = forward(self.db, self.data_dir, self.collector)
        except OSError as exc:
            if not self._down:
                log.warning(
                    "syslog collector %s:%s unreachable (%s); audit entries stay queued",
                    self.collector.host,
                    self.collector.port,
                    exc,
                )
            self._down = True
            return 0
        if self._down:
            log.info("syslog collector reachable again")
        self._down = False
        return sent

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                sent = self.tick()
            except Exception:  # a database hiccup: the next tick tries again, loudly
                log.exception("audit syslog forwarding failed")
                continue
            if sent:
                log.debug("forwarded %d audit entries to syslog", sent)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


def start(db: Database, settings: Settings) -> ForwardTimer | None:
    """The running timer, or None without a collector (``audit_syslog_host``) or interval."""
    interval = settings.audit_syslog_interval
    if not settings.audit_syslog_host or not interval or interval <= 0:
        return None
    collector = Collector(
        settings.audit_syslog_host,
        settings.audit_syslog_port,
        settings.audit_syslog_tls,
        settings.audit_syslog_ca_file,
    )
    return ForwardTimer(db, settings.data_dir, collector, float(interval)).start()
