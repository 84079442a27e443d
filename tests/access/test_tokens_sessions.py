"""Access tokens, refresh rotation, revocation, cookies and service-account keys."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest
from fastapi.testclient import TestClient

from access._helpers import bearer, login
from trialpacs.access import users
from trialpacs.access.access_tokens import Signer
from trialpacs.access.apikeys import create_key, revoke_keys
from trialpacs.access.policy import Grant, Principal
from trialpacs.access.tokens import TokenVerifier, create_token
from trialpacs.archive import Archive
from trialpacs.web.app import create_app

from .conftest import open_archive


def test_access_token_is_signed_short_lived_and_carries_roles(
    client: TestClient, alice: str
) -> None:
    body = login(client, alice).json()
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["sub"] == "alice" and claims["roles"] == ["reader@T1"]
    assert claims["exp"] - claims["iat"] == 15 * 60
    assert claims["scope"] == "*" and claims["sid"]


def test_expired_and_tampered_tokens_are_refused(archive: Archive) -> None:
    signer = Signer(archive.db)
    p = Principal("bob", grants=(Grant("reader", "T1"),), session_id="x")
    expired = signer.issue(p, minutes=-1).token
    assert signer.verify(expired) is None
    good = signer.issue(p, minutes=5).token
    assert signer.verify(good) is not None

    forged_claims = jwt.decode(good, options={"verify_signature": False})
    forged_claims["roles"] = ["administrator"]
    forged = jwt.encode(
        forged_claims,
        "not-our-key" * 4,
        algorithm="HS256",
        headers={"kid": jwt.get_unverified_header(good)["kid"]},
    )
    assert signer.verify(forged) is None
    none_alg = jwt.encode(forged_claims, None, algorithm="none")  # type: ignore[arg-type]
    assert signer.verify(none_alg) is None


def test_token_expiry_on_the_wire(tmp_path: Path) -> None:
    archive = open_archive(tmp_path, access_token_minutes=0)
    users.add_user(archive.db, "carol", password="sunny-meadow-lantern-1")
    with TestClient(create_app(archive)) as client:
        token = login(client, "carol", "sunny-meadow-lantern-1").json()["access_token"]
        time.sleep(6)  # lifetime 0 plus the 5 s leeway
        assert client.get("/auth/me", headers=bearer(token)).status_code == 401
    archive.close()


def test_refresh_rotates_and_reuse_revokes_the_session(client: TestClient, alice: str) -> None:
    first = login(client, alice).json()
    second = client.post("/auth/token/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    new = second.json()
    assert new["refresh_token"] != first["refresh_token"]
    assert client.get("/auth/me", headers=bearer(new["access_token"])).status_code == 200
    # replaying the old refresh token: refused, and the whole session is ended
    replay = client.post("/auth/token/refresh", json={"refresh_token": first["refresh_token"]})
    assert replay.status_code == 401
    client.app.state.auth.invalidate()  # type: ignore[attr-defined]
    assert client.get("/auth/me", headers=bearer(new["access_token"])).status_code == 401
    again = client.post("/auth/token/refresh", json={"refresh_token": new["refresh_token"]})
    assert again.status_code == 401


def test_logout_revokes_access_and_refresh(client: TestClient, alice: str) -> None:
    pair = login(client, alice).json()
    assert client.post("/auth/logout", headers=bearer(pair["access_token"])).status_code == 200
    assert client.get("/auth/me", headers=bearer(pair["access_token"])).status_code == 401
    r = client.post("/auth/token/refresh", json={"refresh_token": pair["refresh_token"]})
    assert r.status_code == 401


def test_refresh_reads_grants_again(client: TestClient, archive: Archive, alice: str) -> None:
    pair = login(client, alice).json()
    users.grant(archive.db, alice, "data_manager@T2")
    new = client.post("/auth/token/refresh", json={"refresh_token": pair["refresh_token"]}).json()
    roles = client.get("/auth/me", headers=bearer(new["access_token"])).json()["roles"]
    assert roles == ["data_manager@T2", "reader@T1"]


def test_role_revoke_ends_sessions(client: TestClient, archive: Archive, alice: str) -> None:
    pair = login(client, alice).json()
    assert users.revoke(archive.db, alice, "reader@T1") == 1
    client.app.state.auth.invalidate()  # type: ignore[attr-defined]
    assert client.get("/auth/me", headers=bearer(pair["access_token"])).status_code == 401


def test_cookie_flags_and_cookie_session(client: TestClient, alice: str) -> None:
    r = login(client, alice, session="cookie")
    assert r.status_code == 200
    header = r.headers["set-cookie"]
    lowered = header.lower()
    assert "httponly" in lowered and "secure" in lowered and "samesite=lax" in lowered
    assert "path=/" in lowered and "max-age=43200" in lowered
    value = header.split(";", 1)[0].split("=", 1)[1]
    cookies = {"tp_session": value}
    client.cookies.clear()
    me = client.get("/auth/me", cookies=cookies)
    assert me.status_code == 200 and me.json()["subject"] == "alice"
    viewer = client.get("/auth/session/token", cookies=cookies)
    assert viewer.status_code == 200
    token = viewer.json()["access_token"]
    assert client.get("/auth/me", headers=bearer(token)).json()["subject"] == "alice"
    # a cross-site write with the cookie is not authenticated (CSRF)
    cross = client.post("/auth/logout", cookies=cookies, headers={"Origin": "https://evil.example"})
    assert cross.status_code == 401
    out = client.post("/auth/logout", cookies=cookies)
    assert out.status_code == 200 and "tp_session=" in out.headers["set-cookie"]
    assert client.get("/auth/me", cookies=cookies).status_code == 401


def test_cookie_idle_timeout(tmp_path: Path) -> None:
    archive = open_archive(tmp_path, session_idle_minutes=0)
    users.add_user(archive.db, "dave", password="sunny-meadow-lantern-1")
    with TestClient(create_app(archive)) as client:
        r = login(client, "dave", "sunny-meadow-lantern-1", session="cookie")
        value = r.headers["set-cookie"].split(";", 1)[0].split("=", 1)[1]
        client.cookies.clear()
        assert client.get("/auth/me", cookies={"tp_session": value}).status_code == 401
    archive.close()


def test_service_account_keys_are_scoped_and_revocable(
    client: TestClient, archive: Archive
) -> None:
    key = create_key(archive.db, "ohif-bot", grants=["reader@T1"], scopes=["dicomweb"])
    me = client.get("/auth/me", headers=bearer(key)).json()
    assert me == {
        "subject": "ohif-bot",
        "kind": "service",
        "roles": ["reader@T1"],
        "scopes": ["dicomweb"],
    }
    # no workspace scope: the workspace answers as if nothing were there
    assert client.get("/workspace/files", headers=bearer(key)).status_code == 404
    assert revoke_keys(archive.db, "ohif-bot") == 1
    client.app.state.auth.invalidate()  # type: ignore[attr-defined]
    assert client.get("/auth/me", headers=bearer(key)).status_code == 401
    with pytest.raises(ValueError):
        create_key(archive.db, "x", scopes=["everything"])


def test_bootstrap_token_api_still_works(archive: Archive) -> None:
    secret = create_token(archive.db, "legacy")
    identity = TokenVerifier(archive.db).verify(secret)
    assert identity is not None and identity.name == "legacy"
    assert identity.grants == (Grant("administrator"),)
