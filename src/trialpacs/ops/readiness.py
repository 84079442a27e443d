"""Readiness: can this process serve requests right now?

``/health`` says the process is alive; ``/ready`` says its dependencies
answer, so a load balancer stops sending traffic to a server whose database
or object store is unreachable, and starts again when they come back. Each
check has a deadline: a probe must answer quickly even when a dependency
hangs (boto3 retries, TCP timeouts), because a slow "not ready" is as bad as
none.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

from sqlalchemy import text

from trialpacs.archive import Archive

PROBE_KEY = "trialpacs-ready-probe"
DEADLINE_SECONDS = 3.0
# Checks run here so a hanging dependency holds a probe thread, not the caller.
_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ready-probe")


@dataclass(frozen=True)
class Readiness:
    ready: bool
    checks: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def _database(archive: Archive) -> None:
    with archive.db.read() as session:
        session.execute(text("SELECT 1")).scalar()


def _storage(archive: Archive) -> None:
    archive.store.exists(PROBE_KEY)  # a miss is fine; an error is not


def check(archive: Archive, deadline: float = DEADLINE_SECONDS) -> Readiness:
    """Ask the index and the published store; each answers ``ok`` or why not."""
    t0 = time.perf_counter()
    probes: dict[str, Callable[[Archive], None]] = {"database": _database, "storage": _storage}
    futures = {name: _POOL.submit(fn, archive) for name, fn in probes.items()}
    checks: dict[str, str] = {}
    for name, future in futures.items():
        left = max(0.0, deadline - (time.perf_counter() - t0))
        try:
            future.result(timeout=left)
            checks[name] = "ok"
        except FutureTimeout:
            checks[name] = f"unreachable: no answer within {deadline:g} s"
        except Exception as exc:  # any driver error means "not ready", never a 500
            # The type only: messages can carry connection strings.
            checks[name] = f"unreachable: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    return Readiness(ready=ok, checks=checks, seconds=time.perf_counter() - t0)
