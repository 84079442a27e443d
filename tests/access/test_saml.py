"""SAML sign-in round trips with a pysaml2 IdP: signed assertions, tampering, expiry."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from access._saml_idp import ACS, SP_ENTITY, Idp, make_idp
from trialpacs.archive import Archive
from trialpacs.settings import load_settings
from trialpacs.web.app import create_app

pytestmark = pytest.mark.slow
SARA = {"uid": ["sara"], "groups": ["readers"], "displayName": ["Sara S"]}


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Idp:
    return make_idp(tmp_path_factory.mktemp("saml"))


@pytest.fixture
def app(idp: Idp, tmp_path: Path) -> Iterator[TestClient]:
    idp.lifetime_minutes = 5
    settings = load_settings(
        None,
        data_dir=tmp_path,
        cookie_secure=False,
        saml_idp_metadata=str(idp.metadata_file),
        saml_sp_entity_id=SP_ENTITY,
        saml_acs_url=ACS,
        saml_sp_key_file=str(idp.sp_key),
        saml_sp_cert_file=str(idp.sp_cert),
        saml_attribute_roles={"readers": ["reader@T1"], "admins": ["administrator"]},
    )
    archive = Archive.open(settings)
    with TestClient(create_app(archive)) as client:
        yield client
    archive.close()


def start(client: TestClient) -> str:
    r = client.get("/auth/saml/login", params={"next": "/viewer/"}, follow_redirects=False)
    assert r.status_code == 302
    return r.headers["location"]


def post(client: TestClient, saml_response: str) -> object:
    return client.post(
        "/auth/saml/acs", data={"SAMLResponse": saml_response}, follow_redirects=False
    )


def test_full_round_trip_maps_attributes_to_roles(app: TestClient, idp: Idp) -> None:
    done = post(app, idp.answer(start(app), SARA))
    assert done.status_code == 303, done.text  # type: ignore[attr-defined]
    assert done.headers["location"] == "/viewer/"  # type: ignore[attr-defined]
    me = app.get("/auth/me").json()
    assert me["subject"] == "sara" and me["roles"] == ["reader@T1"]


def test_tampered_assertion_is_rejected(app: TestClient, idp: Idp) -> None:
    good = base64.b64decode(idp.answer(start(app), SARA))
    assert b">readers<" in good
    forged = base64.b64encode(good.replace(b">readers<", b">admins<")).decode()
    assert post(app, forged).status_code == 401  # type: ignore[attr-defined]
    assert app.get("/auth/me").status_code == 401


def test_unsigned_assertion_is_rejected(app: TestClient, idp: Idp) -> None:
    assert post(app, idp.answer(start(app), SARA, sign=False)).status_code == 401  # type: ignore[attr-defined]


def test_expired_assertion_is_rejected(app: TestClient, idp: Idp) -> None:
    idp.lifetime_minutes = -10
    assert post(app, idp.answer(start(app), SARA)).status_code == 401  # type: ignore[attr-defined]


def test_unsolicited_or_replayed_response_is_rejected(app: TestClient, idp: Idp) -> None:
    location = start(app)
    answer = idp.answer(location, SARA)
    app.cookies.clear()  # no record of having asked
    assert post(app, answer).status_code == 401  # type: ignore[attr-defined]
    start(app)  # a new request: the old response does not answer it
    assert post(app, answer).status_code == 401  # type: ignore[attr-defined]


def test_metadata_is_published(app: TestClient) -> None:
    r = app.get("/auth/saml/metadata")
    assert r.status_code == 200 and SP_ENTITY in r.text and "AssertionConsumerService" in r.text
