"""Engine and session factory for SQLite (WAL) and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


class Database:
    """One engine, one session factory, and a write lock for SQLite.

    SQLite allows one writer at a time; serialising writers in-process avoids
    'database is locked' retries under concurrent ingest. PostgreSQL needs no
    such lock.
    """

    def __init__(self, url: str, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.is_sqlite:
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        self.engine: Engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_lock = threading.Lock() if self.is_sqlite else None
        # Where key files for data kept encrypted in the index live (the data
        # directory; set by Archive.open). Never the index itself.
        self.key_dir: Path | None = None

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self.sessions() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session whose transaction commits on success, serialised on SQLite."""
        lock = self._write_lock
        if lock is not None:
            lock.acquire()
        try:
            with self.sessions() as session, session.begin():
                yield session
        finally:
            if lock is not None:
                lock.release()

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # FULL: a committed transaction survives power loss, which is what an
    # acknowledged store promises.
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    # DICOM matching of non-name attributes is case-sensitive; SQLite's LIKE is not by default.
    cur.execute("PRAGMA case_sensitive_like=ON")
    cur.close()
