"""The job table: claims are exclusive, leases expire, failures back off then need attention."""

from __future__ import annotations

import time
from pathlib import Path

from trialpacs.index.db import Database
from trialpacs.index.migrate import upgrade
from trialpacs.pipeline import jobs


def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'i.sqlite3'}")
    upgrade(database.engine)
    return database


def test_claim_is_exclusive_and_lease_expiry_allows_takeover(tmp_path: Path) -> None:
    d = db(tmp_path)
    pk = jobs.enqueue(d, "series", "1.2.3", max_attempts=3)
    assert jobs.enqueue(d, "series", "1.2.3", max_attempts=3) == pk  # pending: unchanged
    first = jobs.claim(d, "w1", lease_seconds=0.3)
    assert first is not None and first.pk == pk and first.attempts == 1
    assert jobs.claim(d, "w2", lease_seconds=0.3) is None
    time.sleep(0.4)  # w1 died: its lease ran out
    second = jobs.claim(d, "w2", lease_seconds=10)
    assert second is not None and second.attempts == 2
    jobs.finish(d, pk, "w1")  # the dead worker's late answer changes nothing
    assert not jobs.renew(d, pk, "w1", 10)
    jobs.finish(d, pk, "w2")
    assert jobs.claim(d, "w3", lease_seconds=10) is None


def test_failures_back_off_then_need_attention(tmp_path: Path) -> None:
    d = db(tmp_path)
    pk = jobs.enqueue(d, "series", "9.9", max_attempts=2)
    job = jobs.claim(d, "w", 10)
    assert job is not None
    assert jobs.fail(d, pk, "w", "boom", backoff_seconds=0.2) == jobs.PENDING
    assert jobs.claim(d, "w", 10) is None  # backing off
    time.sleep(0.25)
    assert jobs.claim(d, "w", 10) is not None
    assert jobs.fail(d, pk, "w", "boom again", backoff_seconds=0.2) == jobs.ATTENTION
    assert jobs.claim(d, "w", 10) is None
    # Enqueuing again (new data, or a retry) starts over.
    jobs.enqueue(d, "series", "9.9", max_attempts=2)
    assert jobs.claim(d, "w", 10) is not None
