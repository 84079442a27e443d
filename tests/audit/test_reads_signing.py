"""Read assignments and their e-signatures over HTTP, as a reader and a data manager see them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from dicomfactory import make_bytes
from trialpacs.access import users
from trialpacs.access.apikeys import create_key
from trialpacs.archive import Archive
from trialpacs.audit import verify
from trialpacs.audit.chain import Filter, query
from trialpacs.ingest.store import Placement, StoreOutcome, store_many
from trialpacs.settings import load_settings
from trialpacs.web.app import create_app

PASSWORD = "correct-horse-battery-7"


class World:
    def __init__(self, archive: Archive, client: TestClient, studies: list[str]) -> None:
        self.archive, self.client, self.studies = archive, client, studies
        self.tokens: dict[str, str] = {}

    def as_(self, who: str) -> dict[str, str]:
        if who not in self.tokens:
            r = self.client.post("/auth/login", json={"username": who, "password": PASSWORD})
            assert r.status_code == 200, r.text
            self.tokens[who] = r.json()["access_token"]
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def call(self, who: str, method: str, url: str, **kw: Any) -> Any:
        return self.client.request(method, url, headers=self.as_(who), **kw)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    arch = Archive.open(load_settings(None, data_dir=tmp_path))
    studies = []
    for trial in ("T1", "T1", "T2"):
        where = Placement(collection="published", trial_id=trial, site_id="S1")
        (out,) = store_many(arch, [make_bytes()], placement=where)
        assert isinstance(out, StoreOutcome)
        studies.append(out.study_uid)
    for name, grant, display in (
        ("dm", "data_manager@T1", "Dana Manager"),
        ("ann", "reader@T1", "Dr. Ann Reader"),
        ("bob", "reader@T1", "Dr. Bob Other"),
        ("mon", "monitor@T1", "Mo Nitor"),
    ):
        users.add_user(arch.db, name, password=PASSWORD, display_name=display)
        users.grant(arch.db, name, grant)
    with TestClient(create_app(arch)) as client:
        yield World(arch, client, studies)
    arch.close()


def _assign(w: World, study: str, reader: str = "ann", trial: str = "T1") -> Any:
    return w.call(
        "dm", "POST", "/api/reads", json={"trial": trial, "study": study, "reader": reader}
    )


def test_assign_list_sign_and_show_the_manifestation(world: World) -> None:
    w = world
    r = _assign(w, w.studies[0])
    assert r.status_code == 201, r.text
    read_id = r.json()["id"]
    assert _assign(w, w.studies[0]).status_code == 409  # once per reader
    assert _assign(w, w.studies[2], trial="T2").status_code == 404  # not the DM's trial
    assert _assign(w, w.studies[2]).status_code == 404  # a T2 study named as T1
    assert "may not read" in _assign(w, w.studies[1], reader="mon").text
    self_assign = {"trial": "T1", "study": w.studies[1], "reader": "ann"}
    assert w.call("ann", "POST", "/api/reads", json=self_assign).status_code == 404

    mine = w.call("ann", "GET", "/api/reads").json()["reads"]
    assert [(x["id"], x["study"], x["status"]) for x in mine] == [
        (read_id, w.studies[0], "assigned")
    ]
    assert w.call("bob", "GET", "/api/reads").json()["reads"] == []
    assert w.call("bob", "GET", f"/api/reads/{read_id}").status_code == 404
    assert w.call("dm", "GET", f"/api/reads/{read_id}").status_code == 200

    body = {"password": PASSWORD, "meaning": "Reviewed", "findings": "No new lesions."}
    wrong = w.call(
        "ann", "POST", f"/api/reads/{read_id}/sign", json={**body, "password": "nope-nope-12"}
    )
    assert wrong.status_code == 403
    refused = query(w.archive.db, Filter(action="signature.sign"))[-1]
    assert refused["outcome"] == "failure" and refused["actor"] == "ann"
    assert w.call("bob", "POST", f"/api/reads/{read_id}/sign", json=body).status_code == 404
    bad_meaning = w.call(
        "ann", "POST", f"/api/reads/{read_id}/sign", json={**body, "meaning": "OK"}
    )
    assert bad_meaning.status_code == 422

    signed = w.call("ann", "POST", f"/api/reads/{read_id}/sign", json=body)
    assert signed.status_code == 200, signed.text
    sig = signed.json()["signature"]
    assert sig["printed_name"] == "Dr. Ann Reader" and sig["meaning"] == "Reviewed"
    assert sig["signed_at"].endswith("Z") and sig["valid"] is True
    assert sig["manifestation"] == f"Dr. Ann Reader — Reviewed — {sig['signed_at']} (UTC)"
    assert signed.json()["findings"] == "No new lesions." and signed.json()["status"] == "signed"
    assert w.call("ann", "POST", f"/api/reads/{read_id}/sign", json=body).status_code == 409

    # The manifestation is in the trail, where the trial's monitor sees and exports it.
    entries = w.call("mon", "GET", "/api/audit?action=signature.sign").json()["entries"]
    ok = [e for e in entries if e["outcome"] == "success"]
    assert ok and ok[-1]["signature"]["manifestation"] == sig["manifestation"]
    csv = w.call("mon", "GET", "/api/audit/export?format=csv&action=signature.sign").text
    assert sig["manifestation"] in csv
    assert verify(w.archive.db).ok


def test_copied_or_altered_signature_fails_verification(world: World) -> None:
    w = world
    first = _assign(w, w.studies[0]).json()["id"]
    second = _assign(w, w.studies[1]).json()["id"]
    body = {"password": PASSWORD, "meaning": "Approved", "findings": "Stable disease."}
    assert w.call("ann", "POST", f"/api/reads/{first}/sign", json=body).status_code == 200
    with w.archive.db.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE read_assignments SET signature=(SELECT signature FROM read_assignments "
                "WHERE pk=:a), status='signed', findings='Stable disease.' WHERE pk=:b"
            ),
            {"a": first, "b": second},
        )
    copied = w.call("ann", "GET", f"/api/reads/{second}").json()["signature"]
    assert copied["valid"] is False
    assert w.call("ann", "GET", f"/api/reads/{first}").json()["signature"]["valid"] is True
    with w.archive.db.engine.begin() as conn:
        conn.execute(
            text("UPDATE read_assignments SET findings='Progression.' WHERE pk=:a"), {"a": first}
        )
    assert w.call("ann", "GET", f"/api/reads/{first}").json()["signature"]["valid"] is False


def test_service_account_cannot_sign(world: World) -> None:
    w = world
    read_id = _assign(w, w.studies[0]).json()["id"]
    key = create_key(w.archive.db, "ann-bot", grants=["reader@T1"], scopes=["*"])
    r = w.client.post(
        f"/api/reads/{read_id}/sign",
        json={"password": PASSWORD, "meaning": "Reviewed"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert r.status_code == 404  # not its read


def test_sso_account_is_told_to_sign_in_again(world: World) -> None:
    w = world
    read_id = _assign(w, w.studies[0]).json()["id"]
    with w.archive.db.engine.begin() as conn:
        conn.execute(text("UPDATE users SET source='oidc' WHERE username='ann'"))
    token = w.client.app.state.auth  # type: ignore[attr-defined]
    pk = token.user_pk("ann")
    pair = token.sign_in(pk, "oidc")
    r = w.client.post(
        f"/api/reads/{read_id}/sign",
        json={"password": PASSWORD, "meaning": "Reviewed"},
        headers={"Authorization": f"Bearer {pair.access_token}"},
    )
    assert r.status_code == 409 and "forced-authentication" in r.text
