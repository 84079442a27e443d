"""Syslog forwarding on a timer: through collector outages every entry arrives once, in order."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from support.services import free_port, live_server
from trialpacs.archive import Archive
from trialpacs.audit.chain import AuditEvent, record
from trialpacs.audit.forwarding import ForwardTimer
from trialpacs.audit.syslog import Collector, read_cursor
from trialpacs.settings import Settings, load_settings


class Collecting:
    """A TCP syslog collector (RFC 6587 octet counting) that can be stopped and started again."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.frames: list[bytes] = []
        self._lock = threading.Lock()
        self.server: socket.socket | None = None
        self.thread: threading.Thread | None = None

    def up(self) -> None:
        self.server = socket.create_server(("127.0.0.1", self.port))
        self.thread = threading.Thread(target=self._run, args=(self.server,), daemon=True)
        self.thread.start()

    def down(self) -> None:
        if self.server is not None:
            self.server.close()
        if self.thread is not None:
            self.thread.join(10)
        self.server = self.thread = None

    def _run(self, server: socket.socket) -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            buf = b""
            with conn:
                while chunk := conn.recv(65536):
                    buf += chunk
            while buf:
                length, _, rest = buf.partition(b" ")
                n = int(length)
                with self._lock:
                    self.frames.append(rest[:n])
                buf = rest[n:]

    def seqs(self) -> list[int]:
        with self._lock:
            return [int(re.search(rb'seq="(\d+)"', f).group(1)) for f in self.frames]  # type: ignore[union-attr]


def _wait(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_timer_forwards_through_outages_once_and_in_order(tmp_path: Path) -> None:
    arch = Archive.open(load_settings(None, data_dir=tmp_path))
    port = free_port()
    sink = Collecting(port)
    timer = ForwardTimer(arch.db, tmp_path, Collector("127.0.0.1", port, timeout=2), 0.1)
    timer.start()
    try:
        for i in range(5):  # collector down from the start
            record(arch.db, AuditEvent(action="test.syslog", actor=f"a{i}"))
        time.sleep(0.5)  # several ticks fail
        assert read_cursor(tmp_path) == 0
        sink.up()
        assert _wait(lambda: sink.seqs() == [1, 2, 3, 4, 5]), sink.seqs()
        sink.down()  # a second outage while the trail grows
        for i in range(4):
            record(arch.db, AuditEvent(action="test.syslog", actor=f"b{i}", outcome="failure"))
        time.sleep(0.5)
        assert read_cursor(tmp_path) == 5
        sink.up()
        assert _wait(lambda: len(sink.seqs()) >= 9)
        time.sleep(0.3)  # a few more ticks: nothing is sent twice
    finally:
        timer.stop()
        sink.down()
        arch.close()
    assert sink.seqs() == list(range(1, 10))
    assert read_cursor(tmp_path) == 9


@pytest.mark.slow
def test_serve_forwards_to_the_configured_collector(tmp_path: Path) -> None:
    port = free_port()
    sink = Collecting(port)
    env = {
        "TRIALPACS_AUDIT_SYSLOG_HOST": "127.0.0.1",
        "TRIALPACS_AUDIT_SYSLOG_PORT": str(port),
        "TRIALPACS_AUDIT_SYSLOG_TLS": "false",
        "TRIALPACS_AUDIT_SYSLOG_INTERVAL": "0.3",
    }
    try:
        with live_server(tmp_path, env) as live:
            httpx.get(live.url + "/dicomweb/studies", headers=live.headers())
            time.sleep(1.0)  # the collector is down: entries wait in the trail
            sink.up()
            assert _wait(lambda: bool(sink.seqs()))
            arch = Archive.open(Settings(data_dir=tmp_path), migrate=False)
            try:
                with arch.db.engine.connect() as conn:
                    entries = conn.exec_driver_sql("SELECT max(seq) FROM audit_log").scalar()
            finally:
                arch.close()
            assert _wait(lambda: len(sink.seqs()) >= int(entries or 0))
    finally:
        sink.down()
    seqs = sink.seqs()
    assert seqs == list(range(1, len(seqs) + 1))
