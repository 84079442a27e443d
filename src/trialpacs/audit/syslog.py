"""Forwarding to a syslog collector (RFC 5424 over TCP or TLS, RFC 6587 octet counting).

The audit table is the queue: a cursor file in the data directory holds the
last sequence number the collector accepted, and is advanced (fsynced) only
after an entry was written to the socket. When the collector is down nothing
is lost; the next run resends from the cursor. A crash between send and
cursor update resends one entry, which the collector can drop by its
``seq`` (at-least-once).
"""

from __future__ import annotations

import json
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from trialpacs.audit.chain import query_after
from trialpacs.index.db import Database

CURSOR_FILE = "audit-syslog.cursor"
# facility 13 (log audit), severity 6 (informational) / 4 (warning) for failures
_PRI_OK = 13 * 8 + 6
_PRI_FAIL = 13 * 8 + 4


@dataclass(frozen=True)
class Collector:
    host: str
    port: int
    tls: bool = False
    ca_file: str | None = None
    timeout: float = 5.0


def format_5424(entry: dict[str, object], hostname: str) -> bytes:
    pri = _PRI_OK if entry["outcome"] == "success" else _PRI_FAIL
    msg = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    sd = f'[trialpacs@32473 seq="{entry["seq"]}" hash="{entry["hash"]}"]'
    line = f"<{pri}>1 {entry['at']} {hostname} trialpacs - audit {sd} {msg}".encode()
    return f"{len(line)} ".encode() + line


def read_cursor(data_dir: Path) -> int:
    try:
        return int((data_dir / CURSOR_FILE).read_text().strip() or 0)
    except FileNotFoundError:
        return 0


def _write_cursor(data_dir: Path, seq: int) -> None:
    path = data_dir / CURSOR_FILE
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as fh:
        fh.write(str(seq))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _connect(c: Collector) -> socket.socket:
    sock = socket.create_connection((c.host, c.port), timeout=c.timeout)
    if not c.tls:
        return sock
    ctx = ssl.create_default_context(cafile=c.ca_file)
    return ctx.wrap_socket(sock, server_hostname=c.host)


def forward(db: Database, data_dir: Path, collector: Collector, batch: int = 500) -> int:
    """Send everything after the cursor; returns how many were sent. Raises OSError if down."""

    sent = 0
    cursor = read_cursor(data_dir)
    hostname = socket.gethostname()
    with _connect(collector) as sock:
        while True:
            entries = query_after(db, cursor, batch)
            if not entries:
                return sent
            for entry in entries:
                sock.sendall(format_5424(entry, hostname))
                cursor = int(entry["seq"])
                _write_cursor(data_dir, cursor)
                sent += 1
