"""The hash chain on SQLite and PostgreSQL: tampering directly in SQL is detected."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from tests.support.services import postgres_database
from typer.testing import CliRunner

from trialpacs.audit import AuditEvent, record, verify
from trialpacs.audit import checkpoints as cps
from trialpacs.audit.chain import Filter, query
from trialpacs.cli.main import app
from trialpacs.index.db import Database
from trialpacs.index.migrate import upgrade


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'index.sqlite3'}")
        upgrade(database.engine)
        yield database
        database.dispose()
        return
    with postgres_database() as url:
        database = Database(url)
        upgrade(database.engine)
        yield database
        database.dispose()


def _fill(db: Database, n: int = 6) -> None:
    for i in range(n):
        record(
            db,
            AuditEvent(
                action="GET /dicomweb/studies/{study}/metadata",
                actor=f"user{i % 2}",
                roles=["reader@T1"],
                address="10.0.0.1",
                trial="T1",
                site="S1" if i % 2 else "S2",
                study=f"1.2.3.{i}",
            ),
        )


def _tamper(db: Database, sql: str) -> None:
    """As a DBA would: on PostgreSQL the append-only trigger must be bypassed first."""
    with db.engine.begin() as conn:
        if not db.is_sqlite:
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text(sql))


def test_intact_chain_verifies(db: Database) -> None:
    _fill(db)
    result = verify(db)
    assert result.ok and result.entries == 6


def test_changed_entry_is_named(db: Database) -> None:
    _fill(db)
    _tamper(db, "UPDATE audit_log SET actor = 'someone' WHERE seq = 3")
    result = verify(db)
    assert result.broken is not None and result.broken.seq == 3
    assert "changed" in result.broken.reason


def test_deleted_entry_is_named(db: Database) -> None:
    _fill(db)
    _tamper(db, "DELETE FROM audit_log WHERE seq = 4")
    result = verify(db)
    assert result.broken is not None and result.broken.seq == 4


def test_deleted_newest_entries_are_detected(db: Database) -> None:
    _fill(db)
    _tamper(db, "DELETE FROM audit_log WHERE seq >= 5")
    result = verify(db)
    assert result.broken is not None and result.broken.seq == 5


def test_reordered_entries_are_named(db: Database) -> None:
    _fill(db)
    # Swap the content of entries 2 and 3 (keeping their sequence numbers).
    _tamper(db, "UPDATE audit_log SET seq = -2 WHERE seq = 2")
    _tamper(db, "UPDATE audit_log SET seq = 2 WHERE seq = 3")
    _tamper(db, "UPDATE audit_log SET seq = 3 WHERE seq = -2")
    result = verify(db)
    assert result.broken is not None and result.broken.seq == 2


def test_inserted_entry_is_named(db: Database) -> None:
    _fill(db)
    # Make room after entry 2 and insert a forged entry with a plausible hash.
    for seq in range(6, 2, -1):
        _tamper(db, f"UPDATE audit_log SET seq = {seq + 1} WHERE seq = {seq}")
    _tamper(
        db,
        "INSERT INTO audit_log (seq, at, actor, roles, address, agent, action, outcome, trial,"
        " site, study, series, sop, object, old_value, new_value, reason, detail, prev_hash, hash)"
        " SELECT 3, at, 'forger', roles, address, agent, action, outcome, trial, site, study,"
        " series, sop, object, old_value, new_value, reason, detail, hash, hash"
        " FROM audit_log WHERE seq = 2",
    )
    result = verify(db)
    assert result.broken is not None and result.broken.seq == 3


def test_rewritten_chain_fails_signed_checkpoint(db: Database, tmp_path: Path) -> None:
    _fill(db, 3)
    cp = cps.checkpoint(db, tmp_path)
    key = tmp_path / cps.KEY_FILE
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert cps.check(db, cp["public_key"]) == []
    # Rewrite entry 4 (the checkpoint entry) and fix up the hash: the chain
    # alone is consistent again, the signed checkpoint is not.
    from trialpacs.audit.chain import entry_hash, row_values
    from trialpacs.audit.models import AuditEntry

    with db.read() as s:
        row = s.get(AuditEntry, 4)
        assert row is not None
        values = row_values(row)
    values["actor"] = "someone"
    new = entry_hash(values)
    _tamper(db, f"UPDATE audit_log SET actor = 'someone', hash = '{new}' WHERE seq = 4")
    _tamper(db, f"UPDATE audit_chain_head SET hash = '{new}'")
    assert verify(db).ok
    problems = cps.check(db, cp["public_key"])
    assert problems and "entry 4" in problems[0]


def test_concurrent_appenders_keep_one_chain(db: Database) -> None:
    def work(n: int) -> None:
        for i in range(15):
            record(db, AuditEvent(action="test.concurrent", actor=f"t{n}", object=str(i)))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = verify(db)
    assert result.ok and result.entries == 60


def test_concurrent_databases_keep_one_chain(db: Database) -> None:
    """Two engines on one database (as two servers would be)."""
    other = Database(db.url)
    try:

        def work(database: Database, n: int) -> None:
            for i in range(15):
                record(
                    database, AuditEvent(action="test.two-servers", actor=f"s{n}", object=str(i))
                )

        threads = [threading.Thread(target=work, args=(d, n)) for n, d in enumerate((db, other))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        other.dispose()
    result = verify(db)
    assert result.ok and result.entries == 30


def test_filters(db: Database) -> None:
    _fill(db)
    assert len(query(db, Filter(user="user1"))) == 3
    assert len(query(db, Filter(trial="T1", site="S2"))) == 3
    assert [e["seq"] for e in query(db, Filter(object="1.2.3.4"))] == [5]
    assert len(query(db, Filter(action="GET *"))) == 6
    assert query(db, Filter(since="2100-01-01")) == []
    assert len(query(db, Filter(until="2100-01-01T00:00:00Z"))) == 6


def test_postgres_app_role_cannot_update_or_delete() -> None:
    import psycopg

    with postgres_database() as url:
        database = Database(url)
        upgrade(database.engine)
        record(database, AuditEvent(action="test.x", actor="a"))
        role = f"tp_app_{os.getpid()}"
        with database.engine.begin() as conn:
            conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
            conn.execute(text(f"CREATE ROLE \"{role}\" LOGIN PASSWORD 'pw'"))
            conn.execute(text(f'GRANT SELECT, INSERT ON audit_log TO "{role}"'))
        try:
            # The owner (here the superuser) is refused by the trigger.
            for sql in (
                "UPDATE audit_log SET actor = 'x'",
                "DELETE FROM audit_log",
                "TRUNCATE audit_log",
            ):
                with pytest.raises(Exception, match="append-only"), database.engine.begin() as c:
                    c.execute(text(sql))
            # The application role is refused by privileges.
            raw = url.replace("postgresql+psycopg://", "postgresql://")
            host_db = raw.split("@", 1)[1]
            with psycopg.connect(f"postgresql://{role}:pw@{host_db}", autocommit=True) as conn:
                conn.execute("SELECT count(*) FROM audit_log")
                for sql in ("UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log"):
                    with pytest.raises(psycopg.errors.InsufficientPrivilege):
                        conn.execute(sql)
            assert verify(database).ok
        finally:
            database.dispose()
            import contextlib

            from tests.support.services import PG_ADMIN_URL

            with (
                psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn,
                contextlib.suppress(Exception),
            ):
                conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def test_cli_verify_list_export(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'index.sqlite3'}"
    database = Database(url)
    upgrade(database.engine)
    _fill(database, 4)
    runner = CliRunner()
    base = ["--data-dir", str(tmp_path), "--database-url", url]
    res = runner.invoke(app, ["audit", "verify", *base])
    assert res.exit_code == 0, res.output
    assert "OK: 4 entries" in res.output
    res = runner.invoke(app, ["audit", "list", "--user", "user1", *base])
    assert res.exit_code == 0 and res.output.count("user1") == 2
    for fmt in ("csv", "json", "fhir", "atna"):
        res = runner.invoke(app, ["audit", "export", "--format", fmt, "--trial", "T1", *base])
        assert res.exit_code == 0, res.output
        assert "1.2.3.1" in res.output
    res = runner.invoke(app, ["audit", "checkpoint", *base])
    assert res.exit_code == 0, res.output
    # Reads of the trail are audited too.
    actions = [e["action"] for e in query(database, Filter(action="audit.*"))]
    assert "audit.read" in actions and "audit.export" in actions and "audit.verify" in actions
    with database.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET outcome = 'failure' WHERE seq = 2"))
    res = runner.invoke(app, ["audit", "verify", *base])
    assert res.exit_code == 1
    assert "BROKEN at entry 2" in res.output
    database.dispose()
