"""E-signatures by OIDC and SAML accounts: a forced sign-in at the IdP yields a one-time grant.

The in-test OIDC provider and SAML IdP keep a sign-in session and renew the
authentication time only for a forced request, so a signature succeeding
proves trialpacs asked for ``prompt=login``/``max_age=0`` or
``ForceAuthn="true"``; an IdP that ignores them is refused.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from access._oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider, oidc_provider
from access._saml_idp import ACS, SP_ENTITY, Idp, make_idp
from dicomfactory import make_bytes
from trialpacs.access import signing_grants, users
from trialpacs.archive import Archive
from trialpacs.audit import verify
from trialpacs.audit.chain import Filter, query
from trialpacs.ingest.store import Placement, StoreOutcome, store_many
from trialpacs.qc.models import QcSeries
from trialpacs.settings import load_settings
from trialpacs.web.app import create_app

pytestmark = pytest.mark.slow
CALLBACK = "http://testserver/auth/oidc/callback"
PASSWORD = "correct-horse-battery-7"
OLIVIA = {"sub": "u-123", "preferred_username": "olivia", "name": "Dr. Olivia O", "groups": ["rg"]}
SARA = {"uid": ["sara"], "groups": ["readers"], "displayName": ["Dr. Sara S"]}


class World:
    def __init__(self, archive: Archive, client: TestClient, studies: list[str]) -> None:
        self.archive, self.client, self.studies = archive, client, studies
        r = client.post("/auth/login", json={"username": "dm", "password": PASSWORD})
        assert r.status_code == 200, r.text
        self.dm = {"Authorization": f"Bearer {r.json()['access_token']}"}
        self.me: dict[str, str] = {}

    def signed_in(self) -> None:
        token = self.client.get("/auth/session/token").json()["access_token"]
        self.me = {"Authorization": f"Bearer {token}"}

    def assign(self, reader: str) -> int:
        study = self.studies.pop()
        body = {"trial": "T1", "study": study, "reader": reader}
        r = self.client.post("/api/reads", json=body, headers=self.dm)
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    def reauth(self, read_id: int) -> dict[str, Any]:
        r = self.client.post("/auth/reauth", json={"purpose": f"read:{read_id}"}, headers=self.me)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def sign(self, read_id: int, **credential: str) -> httpx.Response:
        body = {"meaning": "Reviewed", "findings": "Stable.", **credential}
        return self.client.post(f"/api/reads/{read_id}/sign", json=body, headers=self.me)


def _world(tmp_path: Path, **settings: Any) -> tuple[Archive, list[str]]:
    archive = Archive.open(load_settings(None, data_dir=tmp_path, cookie_secure=False, **settings))
    studies = []
    for _ in range(4):
        where = Placement(collection="published", trial_id="T1", site_id="S1")
        (out,) = store_many(archive, [make_bytes()], placement=where)
        assert isinstance(out, StoreOutcome)
        studies.append(out.study_uid)
    users.add_user(archive.db, "dm", password=PASSWORD, display_name="Dana Manager")
    users.grant(archive.db, "dm", "data_manager@T1")
    return archive, studies


def _refusals(archive: Archive, action: str) -> list[dict[str, Any]]:
    return [e for e in query(archive.db, Filter(action=action)) if e["outcome"] == "failure"]


# ---------------------------------------------------------------- OIDC


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    with oidc_provider(CALLBACK) as p:
        yield p


@pytest.fixture
def oidc(provider: Provider, tmp_path: Path) -> Iterator[World]:
    provider.user, provider.ignore_force, provider.session_auth_time = dict(OLIVIA), False, None
    archive, studies = _world(
        tmp_path,
        oidc_issuer=provider.issuer,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=CLIENT_SECRET,
        oidc_redirect_url=CALLBACK,
        oidc_claim_roles={"rg": ["reader@T1"]},
    )
    with TestClient(create_app(archive)) as client:
        w = World(archive, client, studies)
        assert _oidc_round_trip(client, "/auth/oidc/login").status_code == 303
        w.signed_in()
        yield w
    archive.close()


def _oidc_round_trip(client: TestClient, start: str) -> httpx.Response:
    if start.startswith("/"):
        start = client.get(start, follow_redirects=False).headers["location"]
    at_idp = httpx.get(start, follow_redirects=False)
    assert at_idp.status_code == 302, at_idp.text
    back = urlparse(at_idp.headers["location"])
    return client.get(back.path, params=parse_qs(back.query), follow_redirects=False)


def test_oidc_forced_sign_in_signs_a_read(oidc: World, provider: Provider) -> None:
    w = oidc
    read_id = w.assign("olivia")
    assert w.sign(read_id, password="anything").status_code == 409  # no grant: told what to do
    provider.session_auth_time = int(time.time()) - 600  # signed in at the IdP long ago
    started = w.reauth(read_id)
    asked = parse_qs(urlparse(started["location"]).query)
    assert asked["prompt"] == ["login"] and asked["max_age"] == ["0"]
    back = _oidc_round_trip(w.client, started["location"])
    assert back.status_code == 200 and back.json()["status"] == "ready", back.text
    assert provider.requests[-1]["prompt"] == "login"

    signed = w.sign(read_id, grant=started["grant"])
    assert signed.status_code == 200, signed.text
    sig = signed.json()["signature"]
    assert sig["printed_name"] == "Dr. Olivia O" and sig["valid"] is True
    assert sig["manifestation"] == f"Dr. Olivia O — Reviewed — {sig['signed_at']} (UTC)"
    ok = [e for e in query(w.archive.db, Filter(action="signature.reauth"))]
    assert [e["outcome"] for e in ok] == ["success"] and ok[0]["object"] == f"read:{read_id}"

    # The used grant is worth nothing for another read (or again).
    other = w.assign("olivia")
    assert w.sign(other, grant=started["grant"]).status_code == 403
    assert _refusals(w.archive, "signature.sign")[-1]["object"] == f"read:{other}"
    assert verify(w.archive.db).ok


def test_oidc_provider_that_ignores_prompt_login_is_refused(
    oidc: World, provider: Provider
) -> None:
    w = oidc
    read_id = w.assign("olivia")
    provider.ignore_force, provider.session_auth_time = True, int(time.time()) - 600
    started = w.reauth(read_id)
    back = _oidc_round_trip(w.client, started["location"])
    assert back.status_code == 403 and "did not authenticate again" in back.text
    assert w.sign(read_id, grant=started["grant"]).status_code == 403
    assert "did not authenticate again" in _refusals(w.archive, "signature.reauth")[-1]["reason"]
    assert _refusals(w.archive, "signature.sign")[-1]["object"] == f"read:{read_id}"


def test_oidc_another_subject_is_refused(oidc: World, provider: Provider) -> None:
    w = oidc
    read_id = w.assign("olivia")
    started = w.reauth(read_id)
    provider.user = {**OLIVIA, "sub": "u-999"}  # someone else at the IdP's keyboard
    back = _oidc_round_trip(w.client, started["location"])
    assert back.status_code == 403 and "different account" in back.text
    assert w.sign(read_id, grant=started["grant"]).status_code == 403
    assert _refusals(w.archive, "signature.reauth")[-1]["actor"] == "olivia"


def test_oidc_expired_grant_is_refused(oidc: World) -> None:
    w = oidc
    read_id = w.assign("olivia")
    started = w.reauth(read_id)
    assert _oidc_round_trip(w.client, started["location"]).status_code == 200
    with w.archive.db.engine.begin() as conn:  # five minutes pass
        conn.execute(text("UPDATE signing_grants SET expires_at = expires_at - 301"))
    assert w.sign(read_id, grant=started["grant"]).status_code == 403
    assert _refusals(w.archive, "signature.sign")[-1]["object"] == f"read:{read_id}"


def test_a_grant_is_used_once(oidc: World) -> None:
    w = oidc
    read_id = w.assign("olivia")
    started = w.reauth(read_id)
    assert _oidc_round_trip(w.client, started["location"]).status_code == 200
    purpose = f"read:{read_id}"
    with pytest.raises(signing_grants.GrantRefused):  # another signer cannot use it
        signing_grants.consume(w.archive.db, started["grant"], username="dm", purpose=purpose)
    signing_grants.consume(w.archive.db, started["grant"], username="olivia", purpose=purpose)
    with pytest.raises(signing_grants.GrantRefused):
        signing_grants.consume(w.archive.db, started["grant"], username="olivia", purpose=purpose)
    assert w.sign(read_id, grant=started["grant"]).status_code == 403


def test_local_accounts_keep_their_password(oidc: World) -> None:
    r = oidc.client.post("/auth/reauth", json={"purpose": "read:1"}, headers=oidc.dm)
    assert r.status_code == 409 and "password" in r.text


# ---------------------------------------------------------------- SAML


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Idp:
    return make_idp(tmp_path_factory.mktemp("saml"))


@pytest.fixture
def saml(idp: Idp, tmp_path: Path) -> Iterator[World]:
    idp.ignore_force, idp.session_instant = False, None
    archive, studies = _world(
        tmp_path,
        saml_idp_metadata=str(idp.metadata_file),
        saml_sp_entity_id=SP_ENTITY,
        saml_acs_url=ACS,
        saml_sp_key_file=str(idp.sp_key),
        saml_sp_cert_file=str(idp.sp_cert),
        saml_attribute_roles={"readers": ["reader@T1"]},
    )
    with TestClient(create_app(archive)) as client:
        w = World(archive, client, studies)
        start = client.get("/auth/saml/login", follow_redirects=False).headers["location"]
        done = _saml_post(client, idp.answer(start, SARA))
        assert done.status_code == 303, done.text
        w.signed_in()
        yield w
    archive.close()


def _saml_post(client: TestClient, saml_response: str, relay: str = "") -> httpx.Response:
    data = {"SAMLResponse": saml_response}
    if relay:
        data["RelayState"] = relay
    return client.post("/auth/saml/acs", data=data, follow_redirects=False)


def _saml_reauth(w: World, idp: Idp, read_id: int, identity: dict[str, list[str]]) -> Any:
    started = w.reauth(read_id)
    relay = parse_qs(urlparse(started["location"]).query)["RelayState"][0]
    back = _saml_post(w.client, idp.answer(started["location"], identity), relay)
    return started, back


def test_saml_force_authn_signs_a_read(saml: World, idp: Idp) -> None:
    w = saml
    read_id = w.assign("sara")
    assert w.sign(read_id, password="anything").status_code == 409
    idp.session_instant = time.time() - 600
    started, back = _saml_reauth(w, idp, read_id, SARA)
    assert idp.requests[-1]["force_authn"] == "true"
    assert back.status_code == 200 and back.json()["status"] == "ready", back.text
    signed = w.sign(read_id, grant=started["grant"])
    assert signed.status_code == 200, signed.text
    assert signed.json()["signature"]["printed_name"] == "Dr. Sara S"
    assert w.sign(read_id, grant=started["grant"]).status_code == 409  # signed already
    assert verify(w.archive.db).ok


def test_saml_idp_that_ignores_force_authn_is_refused(saml: World, idp: Idp) -> None:
    w = saml
    read_id = w.assign("sara")
    idp.ignore_force, idp.session_instant = True, time.time() - 600
    started, back = _saml_reauth(w, idp, read_id, SARA)
    assert back.status_code == 403 and "did not authenticate again" in back.text
    assert w.sign(read_id, grant=started["grant"]).status_code == 403
    assert _refusals(w.archive, "signature.reauth")[-1]["object"] == f"read:{read_id}"


def test_saml_another_name_id_is_refused(saml: World, idp: Idp) -> None:
    w = saml
    read_id = w.assign("sara")
    started, back = _saml_reauth(w, idp, read_id, {**SARA, "uid": ["mallory"]})
    assert back.status_code == 403 and "different account" in back.text
    assert w.sign(read_id, grant=started["grant"]).status_code == 403
    assert _refusals(w.archive, "signature.sign")[-1]["actor"] == "sara"


def test_oidc_data_manager_signs_a_qc_decision_with_a_grant(
    oidc: World, provider: Provider
) -> None:
    w = oidc
    held = "2.25.4711"
    with w.archive.db.write() as session:
        session.add(
            QcSeries(
                series_uid="2.25.4710", deid_series_uid=held, deid_study_uid="2.25.4712",
                trial_id="T1", site_id="S1", verdict="hold", reasons='["anatomy"]',
            )
        )  # fmt: skip
    users.grant(w.archive.db, "olivia", "data_manager@T1")
    w.signed_in()  # a fresh token with the new grant
    url = f"/api/qc/series/{held}/decision"
    body = {"decision": "reject", "reason": "wrong anatomy"}
    assert w.client.post(url, json=body, headers=w.me).status_code == 409  # no grant
    read_grant = w.reauth(w.assign("olivia"))  # a grant for something else
    assert _oidc_round_trip(w.client, read_grant["location"]).status_code == 200
    refused = w.client.post(url, json={**body, "grant": read_grant["grant"]}, headers=w.me)
    assert refused.status_code == 403
    assert _refusals(w.archive, "signature.sign")[-1]["object"] == f"qc_decision:{held}"

    started = w.client.post(
        "/auth/reauth", json={"purpose": f"qc_decision:{held}"}, headers=w.me
    ).json()
    assert _oidc_round_trip(w.client, started["location"]).status_code == 200
    signed = w.client.post(url, json={**body, "grant": started["grant"]}, headers=w.me)
    assert signed.status_code == 200, signed.text
    assert signed.json()["signature"]["printed_name"] == "Dr. Olivia O"
    assert signed.json()["signature"]["meaning"] == "Rejected"
