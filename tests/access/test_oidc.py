"""OIDC sign-in round trips against an in-process provider: claims -> roles, bad tokens."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from fastapi.testclient import TestClient

from access._helpers import bearer
from access._oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider, oidc_provider
from trialpacs.archive import Archive
from trialpacs.settings import load_settings
from trialpacs.web.app import create_app

pytestmark = pytest.mark.slow
CALLBACK = "http://testserver/auth/oidc/callback"
USER = {
    "sub": "u-123",
    "preferred_username": "olivia",
    "name": "Olivia O",
    "groups": ["reader-group"],
}


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    with oidc_provider(CALLBACK) as p:
        yield p


@pytest.fixture
def app(provider: Provider, tmp_path: Path) -> Iterator[TestClient]:
    provider.user = dict(USER)
    provider.id_token_seconds, provider.tamper, provider.foreign_key = 300, False, False
    provider.audience = CLIENT_ID
    settings = load_settings(
        None,
        data_dir=tmp_path,
        cookie_secure=False,
        oidc_issuer=provider.issuer,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=CLIENT_SECRET,
        oidc_redirect_url=CALLBACK,
        oidc_claim_roles={"reader-group": ["reader@T1"], "admin-group": ["administrator"]},
    )
    archive = Archive.open(settings)
    with TestClient(create_app(archive)) as client:
        yield client
    archive.close()


def round_trip(client: TestClient) -> httpx.Response:
    start = client.get("/auth/oidc/login", params={"next": "/viewer/"}, follow_redirects=False)
    assert start.status_code == 302
    at_idp = httpx.get(start.headers["location"], follow_redirects=False)
    assert at_idp.status_code == 302, at_idp.text
    back = urlparse(at_idp.headers["location"])
    assert back.path == "/auth/oidc/callback"
    return client.get("/auth/oidc/callback", params=parse_qs(back.query), follow_redirects=False)


def test_full_sign_in_round_trip(app: TestClient) -> None:
    done = round_trip(app)
    assert done.status_code == 303 and done.headers["location"] == "/viewer/"
    assert "tp_session=" in done.headers["set-cookie"]
    me = app.get("/auth/me").json()  # the cookie jar now holds the session
    assert me["subject"] == "olivia" and me["roles"] == ["reader@T1"]
    token = app.get("/auth/session/token").json()["access_token"]
    assert app.get("/auth/me", headers=bearer(token)).json()["subject"] == "olivia"


@pytest.mark.parametrize("fault", ["tamper", "expired", "foreign_key", "audience"])
def test_bad_id_tokens_are_rejected(app: TestClient, provider: Provider, fault: str) -> None:
    if fault == "tamper":
        provider.tamper = True
    elif fault == "expired":
        provider.id_token_seconds = -120
    elif fault == "foreign_key":
        provider.foreign_key = True
    else:
        provider.audience = "someone-else"
    done = round_trip(app)
    assert done.status_code == 401
    assert app.get("/auth/me").status_code == 401


def test_state_mismatch_and_replayed_code(app: TestClient) -> None:
    start = app.get("/auth/oidc/login", follow_redirects=False)
    at_idp = httpx.get(start.headers["location"], follow_redirects=False)
    query = parse_qs(urlparse(at_idp.headers["location"]).query)
    forged = {**query, "state": ["not-the-state"]}
    assert app.get("/auth/oidc/callback", params=forged).status_code == 401
    ok = app.get("/auth/oidc/callback", params=query, follow_redirects=False)
    assert ok.status_code == 303
    app.cookies.clear()  # no state cookie: refused before the code is even tried
    assert app.get("/auth/oidc/callback", params=query).status_code == 401
    again = app.get("/auth/oidc/login", follow_redirects=False)  # fresh state, used code
    state = parse_qs(urlparse(again.headers["location"]).query)["state"]
    replay = {"code": query["code"], "state": state}
    assert app.get("/auth/oidc/callback", params=replay).status_code == 401


def test_open_redirect_is_not_followed(app: TestClient) -> None:
    start = app.get(
        "/auth/oidc/login", params={"next": "https://evil.example/"}, follow_redirects=False
    )
    at_idp = httpx.get(start.headers["location"], follow_redirects=False)
    back = urlparse(at_idp.headers["location"])
    done = app.get("/auth/oidc/callback", params=parse_qs(back.query), follow_redirects=False)
    assert done.headers["location"] == "/"
