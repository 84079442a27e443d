"""LDAP sign-in against a real OpenLDAP (slapd with memberof + ppolicy) on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from access._helpers import bearer, login
from access._slapd import GROUPS, PASSWORDS, PEOPLE, Slapd, slapd
from trialpacs.access import users
from trialpacs.access.ldap import LdapDirectory
from trialpacs.access.local import AuthFailed
from trialpacs.archive import Archive
from trialpacs.settings import load_settings
from trialpacs.web.app import create_app

pytestmark = pytest.mark.slow

ROLES = {
    f"cn=trial1-readers,{GROUPS}": ["reader@T1"],
    f"CN=Site1-Coordinators,{GROUPS}": ["site_coordinator@T1/S1"],  # DNs compare caselessly
}


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    with slapd(tmp_path_factory.mktemp("slapd")) as server:
        yield server


@pytest.fixture
def ldap_app(directory: Slapd, tmp_path: Path) -> Iterator[tuple[TestClient, Archive]]:
    settings = load_settings(
        None,
        data_dir=tmp_path,
        ldap_url=directory.url,
        ldap_user_base=PEOPLE,
        ldap_user_filter="(&(objectClass=inetOrgPerson)(uid={username}))",
        ldap_group_roles=ROLES,
    )
    archive = Archive.open(settings)
    with TestClient(create_app(archive)) as client:
        yield client, archive
    archive.close()


def test_bind_and_nested_group_to_role(ldap_app: tuple[TestClient, Archive]) -> None:
    client, _ = ldap_app
    r = login(client, "rita", PASSWORDS["rita"])
    assert r.status_code == 200, r.text
    me = client.get("/auth/me", headers=bearer(r.json()["access_token"])).json()
    # rita is in radiologists, which is in trial1-readers: the nested group counts
    assert me["subject"] == "rita" and me["roles"] == ["reader@T1"]
    sam = login(client, "sam", PASSWORDS["sam"]).json()
    roles = client.get("/auth/me", headers=bearer(sam["access_token"])).json()["roles"]
    assert roles == ["site_coordinator@T1/S1"]


def test_wrong_password_unknown_user_and_empty_password(
    ldap_app: tuple[TestClient, Archive],
) -> None:
    client, _ = ldap_app
    wrong = login(client, "rita", "not-ritas-password")
    assert wrong.status_code == 401
    assert login(client, "nobody", "whatever-password").json() == wrong.json()
    assert login(client, "rita", " ").status_code == 401  # never an anonymous bind
    assert login(client, "rita*", PASSWORDS["rita"]).status_code == 401  # filter escaped


def test_disabled_account_refused(directory: Slapd) -> None:
    """OpenLDAP's ppolicy lock refuses the bind; the AD-style filter refuses before binding."""
    plain = LdapDirectory(url=directory.url, user_base=PEOPLE)
    with pytest.raises(AuthFailed):
        plain.authenticate("lock", PASSWORDS["lock"])
    filtered = LdapDirectory(
        url=directory.url, user_base=PEOPLE, disabled_filter="(cn=Rita Reader)"
    )
    with pytest.raises(AuthFailed):
        filtered.authenticate("rita", PASSWORDS["rita"])
    assert plain.authenticate("rita", PASSWORDS["rita"]).display_name == "Rita Reader"


def test_groups_are_read_again_at_each_sign_in(ldap_app: tuple[TestClient, Archive]) -> None:
    client, archive = ldap_app
    login(client, "rita", PASSWORDS["rita"])
    users.grant(archive.db, "rita", "monitor@T9")  # a local grant survives
    client.app.state.archive.settings.ldap_group_roles = {}  # type: ignore[attr-defined]
    body = login(client, "rita", PASSWORDS["rita"]).json()
    roles = client.get("/auth/me", headers=bearer(body["access_token"])).json()["roles"]
    assert roles == ["monitor@T9"]


def test_ldap_name_cannot_take_over_a_local_account(
    ldap_app: tuple[TestClient, Archive],
) -> None:
    client, archive = ldap_app
    users.add_user(archive.db, "sam", password="quiet-river-stone-42")
    r = client.post(
        "/auth/login",
        json={"username": "sam", "password": PASSWORDS["sam"], "provider": "ldap"},
    )
    assert r.status_code == 401
