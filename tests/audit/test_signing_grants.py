"""Signing grants on SQLite and PostgreSQL: ready only for the same account authenticated
after the request, used once even by concurrent signers, refused when expired."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from tests.support.services import postgres_database

from trialpacs.access import signing_grants as sg
from trialpacs.audit.chain import Filter, query
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


def _ready(db: Database, handle: str, purpose: str = "read:1") -> str:
    token = sg.start(db, username="olivia", purpose=purpose, method="oidc", handle=handle)
    grant = sg.pending(db, handle, "oidc")
    assert grant is not None and grant.username == "olivia"
    sg.complete(
        db, grant, external_id="iss|u1", expected_external_id="iss|u1", authn_at=time.time()
    )
    assert sg.pending(db, handle, "oidc") is None  # answered: no second answer
    return token


def test_concurrent_signers_use_a_grant_once(db: Database) -> None:
    token = _ready(db, "h1")
    wins: list[bool] = []

    def use() -> None:
        try:
            sg.consume(db, token, username="olivia", purpose="read:1")
            wins.append(True)
        except sg.GrantRefused:
            wins.append(False)

    threads = [threading.Thread(target=use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False] * 7 + [True]


def test_refusals_are_final_and_audited(db: Database) -> None:
    now = time.time()
    for handle, ext, at, reason in (
        ("stale", "iss|u1", now - 600, "did not authenticate again"),
        ("other", "iss|u2", now, "different account"),
    ):
        token = sg.start(db, username="olivia", purpose="read:2", method="oidc", handle=handle)
        grant = sg.pending(db, handle, "oidc")
        assert grant is not None
        with pytest.raises(sg.GrantRefused, match=reason):
            sg.complete(db, grant, external_id=ext, expected_external_id="iss|u1", authn_at=at)
        with pytest.raises(sg.GrantRefused):
            sg.consume(db, token, username="olivia", purpose="read:2")
        entry = query(db, Filter(action="signature.reauth"))[-1]
        assert entry["outcome"] == "failure" and reason in entry["reason"]


def test_expired_grants_cannot_be_answered_or_used(db: Database) -> None:
    old = time.time() - sg.GRANT_SECONDS - 1
    sg.start(
        db, username="olivia", purpose="read:3", method="oidc", handle="late", requested_at=old
    )
    assert sg.pending(db, "late", "oidc") is None
    token = _ready(db, "fresh", "read:4")
    with pytest.raises(sg.GrantRefused):  # another record, another signer
        sg.consume(db, token, username="olivia", purpose="read:5")
    with pytest.raises(sg.GrantRefused):
        sg.consume(db, token, username="dm", purpose="read:4")
    sg.consume(db, token, username="olivia", purpose="read:4")


def test_long_expired_grants_are_purged_when_a_new_one_starts(db: Database) -> None:
    """Expired grants do not pile up; a recently expired one is kept a day."""
    day_old = time.time() - sg.PURGE_AFTER_SECONDS - sg.GRANT_SECONDS - 1
    sg.start(
        db, username="olivia", purpose="read:6", method="oidc", handle="old", requested_at=day_old
    )
    recent = time.time() - sg.GRANT_SECONDS - 1
    sg.start(
        db, username="olivia", purpose="read:7", method="oidc", handle="recent", requested_at=recent
    )
    sg.start(db, username="olivia", purpose="read:8", method="oidc", handle="new")
    with db.read() as session:
        handles = set(session.scalars(select(sg.SigningGrant.handle)).all())
    assert handles == {"recent", "new"}
