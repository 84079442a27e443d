"""Every route emits its audit entry; generated from the app's route list."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastapi.routing as fr
import pytest
from fastapi.testclient import TestClient

from trialpacs.access.apikeys import create_key
from trialpacs.archive import Archive
from trialpacs.audit import verify
from trialpacs.audit.chain import Filter, query
from trialpacs.settings import load_settings
from trialpacs.web.app import create_app
from trialpacs.web.audit import SKIP_PREFIXES

STUDY = "1.2.3.4"
VALUES = {"study": STUDY, "series": "1.2.3.4.5", "sop": "1.2.3.4.5.6", "trial": "T1",
          "site": "S1", "frames": "1", "name": "notes.txt", "username": "someone",
          "path": "index.html"}  # fmt: skip


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    arch = Archive.open(load_settings(None, data_dir=tmp_path))
    yield arch
    arch.close()


def _routes(client: TestClient) -> list[tuple[str, str]]:
    """(method, template) of every route, prefixes of included routers applied."""

    def walk(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, str]]:
        for r in routes:
            if isinstance(r, fr._IncludedRouter):
                yield from walk(r.original_router.routes, prefix + (r.include_context.prefix or ""))
            elif isinstance(r, fr.APIRoute):
                for m in sorted(set(r.methods) - {"HEAD"}):
                    yield m, prefix + r.path

    found = set(walk(client.app.router.routes))  # type: ignore[attr-defined]
    # Probes (/health, /ready) and static viewer files are not audited; /metrics is.
    return sorted(r for r in found if not r[1].startswith(SKIP_PREFIXES))


def _fill(template: str) -> str:
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: VALUES.get(m.group(1), "x"), template)


def test_every_route_emits_an_entry(archive: Archive) -> None:
    key = create_key(archive.db, "auditor")
    client = TestClient(create_app(archive), headers={"Authorization": f"Bearer {key}"})
    routes = _routes(client)
    assert len(routes) > 20
    missing = []
    for method, template in routes:
        before = len(query(archive.db))
        client.request(method, _fill(template))
        new = query(archive.db)[before:]
        if not any(e["action"] == f"{method} {template}" for e in new):
            missing.append(f"{method} {template}")
    assert missing == []
    assert verify(archive.db).ok


def test_entry_names_actor_object_and_outcome(archive: Archive) -> None:
    key = create_key(archive.db, "auditor")
    client = TestClient(
        create_app(archive),
        headers={"Authorization": f"Bearer {key}", "User-Agent": "pytest-agent"},
    )
    client.get(f"/dicomweb/studies/{STUDY}/metadata", headers={"User-Agent": "pytest-agent"})
    client.get("/health")
    entries = query(archive.db, Filter(object=STUDY))
    assert len(entries) == 1
    e = entries[0]
    assert e["action"] == "GET /dicomweb/studies/{study}/metadata"
    assert e["actor"] == "auditor" and e["roles"] == "administrator"
    assert e["agent"] == "pytest-agent" and e["address"]
    assert e["outcome"] == "failure"  # 404: no such study
    assert not query(archive.db, Filter(action="GET /health"))
    # Unauthenticated requests are recorded too, without an actor.
    TestClient(create_app(archive)).get("/dicomweb/studies")
    anon = query(archive.db, Filter(action="GET /dicomweb/studies"))[-1]
    assert anon["actor"] == "" and anon["outcome"] == "denied"


def test_audit_can_be_switched_off(tmp_path: Path) -> None:
    arch = Archive.open(load_settings(None, data_dir=tmp_path, audit_enabled=False))
    try:
        TestClient(create_app(arch)).get("/dicomweb/studies")
        assert query(arch.db) == []
    finally:
        arch.close()


def test_sign_in_success_failure_and_lockout_are_audited(archive: Archive) -> None:
    from trialpacs.access import users
    from trialpacs.access.local import AuthFailed, LockoutPolicy, authenticate

    users.add_user(archive.db, "alice", password="correct-horse-battery-7")
    authenticate(archive.db, "alice", "correct-horse-battery-7")
    policy = LockoutPolicy(threshold=2, minutes=5)
    for _ in range(3):
        with pytest.raises(AuthFailed):
            authenticate(archive.db, "alice", "wrong-password-123", policy=policy)
    entries = query(archive.db, Filter(action="auth.*"))
    actions = [(e["action"], e["outcome"]) for e in entries]
    assert ("auth.user.add", "success") in actions
    assert ("auth.login.ok", "success") in actions
    assert ("auth.login.fail", "failure") in actions
    assert ("auth.account.locked", "failure") in actions
    assert all(e["object"] == "alice" for e in entries if e["action"].startswith("auth.login"))
    assert verify(archive.db).ok
