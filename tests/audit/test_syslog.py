"""Syslog forwarding: an outage of the collector loses nothing."""

from __future__ import annotations

import re
import socket
import threading
from pathlib import Path

import pytest
from tests.support.services import free_port

from trialpacs.audit import AuditEvent, record
from trialpacs.audit.syslog import Collector, forward, read_cursor
from trialpacs.index.db import Database
from trialpacs.index.migrate import upgrade


class Sink:
    """A TCP syslog collector that parses RFC 6587 octet-counted frames."""

    def __init__(self, port: int) -> None:
        self.server = socket.create_server(("127.0.0.1", port))
        self.frames: list[bytes] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            buf = b""
            with conn:
                while chunk := conn.recv(65536):
                    buf += chunk
            while buf:
                length, _, rest = buf.partition(b" ")
                n = int(length)
                self.frames.append(rest[:n])
                buf = rest[n:]

    def close(self) -> None:
        self.server.close()


def test_outage_loses_nothing(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'index.sqlite3'}")
    upgrade(db.engine)
    for i in range(5):
        record(db, AuditEvent(action="test.syslog", actor=f"u{i}"))
    port = free_port()
    collector = Collector("127.0.0.1", port, timeout=2)
    with pytest.raises(OSError):
        forward(db, tmp_path, collector)  # collector down
    assert read_cursor(tmp_path) == 0
    sink = Sink(port)
    try:
        assert forward(db, tmp_path, collector) == 5
        for i in range(3):
            record(db, AuditEvent(action="test.syslog", actor=f"v{i}", outcome="failure"))
        assert forward(db, tmp_path, collector) == 3
        assert forward(db, tmp_path, collector) == 0
    finally:
        sink.close()
        sink.thread.join(5)
        db.dispose()
    seqs = [int(re.search(rb'seq="(\d+)"', f).group(1)) for f in sink.frames]  # type: ignore[union-attr]
    assert seqs == list(range(1, 9))
    assert sink.frames[0].startswith(b"<110>1 ") and sink.frames[-1].startswith(b"<108>1 ")
