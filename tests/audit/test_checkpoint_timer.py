"""Signed checkpoints on a timer: `serve` writes them while the trail grows, not when idle."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from support.services import live_server
from trialpacs.archive import Archive
from trialpacs.audit import checkpoints
from trialpacs.audit.chain import AuditEvent, record
from trialpacs.audit.scheduler import CheckpointTimer, checkpoint_if_due
from trialpacs.settings import Settings, load_settings


def _wait(predicate, timeout: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_checkpoint_only_when_the_trail_grew(tmp_path: Path) -> None:
    arch = Archive.open(load_settings(None, data_dir=tmp_path))
    try:
        assert checkpoint_if_due(arch.db, tmp_path) is None  # empty trail
        record(arch.db, AuditEvent(action="x", actor="a"))
        first = checkpoint_if_due(arch.db, tmp_path)
        assert first is not None and first["seq"] == 2  # its own entry is covered
        assert checkpoint_if_due(arch.db, tmp_path) is None  # nothing new since
        timer = CheckpointTimer(arch.db, tmp_path, 0.1).start()
        try:
            record(arch.db, AuditEvent(action="y", actor="a"))
            assert _wait(lambda: len(checkpoints.export(arch.db)) == 2)
            time.sleep(0.5)
            assert len(checkpoints.export(arch.db)) == 2  # idle: no checkpoint of checkpoints
        finally:
            timer.stop()
        assert checkpoints.check(arch.db) == []
    finally:
        arch.close()


@pytest.mark.slow
def test_serve_writes_signed_checkpoints(tmp_path: Path) -> None:
    with live_server(tmp_path, {"TRIALPACS_AUDIT_CHECKPOINT_INTERVAL": "0.5"}) as live:
        httpx.get(live.url + "/dicomweb/studies", headers=live.headers())
        arch = Archive.open(Settings(data_dir=tmp_path), migrate=False)
        try:
            assert _wait(lambda: bool(checkpoints.export(arch.db)))
            assert checkpoints.check(arch.db) == []
        finally:
            arch.close()
