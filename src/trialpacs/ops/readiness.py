"""Readiness: can this process serve requests right now?

``/health`` says the process is alive; ``/ready`` says its dependencies
answer, so a load balancer stops sending traffic to a server whose database
or object store is unreachable, and starts again when they come back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlalchemy import text

from trialpacs.archive import Archive

PROBE_KEY = "trialpacs-ready-probe"


@dataclass(frozen=True)
class Readiness:
    ready: bool
    checks: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def check(archive: Archive) -> Readiness:
    """Ask the index and the published store; each answers ``ok`` or why not."""
    t0 = time.perf_counter()
    checks: dict[str, str] = {}
    try:
        with archive.db.read() as session:
            session.execute(text("SELECT 1")).scalar()
        checks["database"] = "ok"
    except Exception as exc:  # any driver error means "not ready", never a 500
        checks["database"] = f"unreachable: {type(exc).__name__}"
    try:
        archive.store.exists(PROBE_KEY)  # a miss is fine; an error is not
        checks["storage"] = "ok"
    except Exception as exc:
        checks["storage"] = f"unreachable: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    return Readiness(ready=ok, checks=checks, seconds=time.perf_counter() - t0)
