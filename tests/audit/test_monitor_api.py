"""The monitor API: search, verify and export over HTTP, limited to the monitor's trial."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from dicomfactory import make_bytes
from trialpacs.access.apikeys import create_key
from trialpacs.archive import Archive
from trialpacs.audit.chain import AuditEvent, Filter, query, record
from trialpacs.ingest.store import Placement, StoreOutcome, store_many
from trialpacs.settings import load_settings
from trialpacs.web.app import create_app


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Archive, TestClient, dict[str, str]]]:
    arch = Archive.open(load_settings(None, data_dir=tmp_path))
    studies = {}
    for trial in ("T1", "T2"):
        where = Placement(collection="published", trial_id=trial, site_id="S1")
        (out,) = store_many(arch, [make_bytes()], placement=where)
        assert isinstance(out, StoreOutcome)
        studies[trial] = out.study_uid
    # An entry that names only the study (as a WADO request does) is in the study's trial.
    record(
        arch.db, AuditEvent(action="GET /dicomweb/studies/{study}", actor="r", study=studies["T1"])
    )
    record(
        arch.db, AuditEvent(action="GET /dicomweb/studies/{study}", actor="r", study=studies["T2"])
    )
    keys = {
        "admin": create_key(arch.db, "admin", grants=["administrator"], scopes=["*"]),
        "monitor": create_key(arch.db, "mon", grants=["monitor@T1"], scopes=["*"]),
        "reader": create_key(arch.db, "rdr", grants=["reader@T1"], scopes=["*"]),
    }
    with TestClient(create_app(arch)) as client:
        yield arch, client, {**keys, **{f"study_{k}": v for k, v in studies.items()}}
    arch.close()


def _h(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_monitor_sees_only_its_trial(world: tuple[Archive, TestClient, dict[str, str]]) -> None:
    _, client, k = world
    r = client.get("/api/audit?limit=1000", headers=_h(k["monitor"]))
    assert r.status_code == 200, r.text
    entries = r.json()["entries"]
    studies = {e["study"] for e in entries if e["study"]}
    assert studies == {k["study_T1"]}
    assert all(e["trial"] in ("", "T1") for e in entries)
    admin = client.get("/api/audit?limit=1000", headers=_h(k["admin"])).json()["entries"]
    assert {k["study_T1"], k["study_T2"]} <= {e["study"] for e in admin}
    # Asking for the other trial gives nothing, not an error that confirms it exists.
    other = client.get("/api/audit?trial=T2", headers=_h(k["monitor"]))
    assert other.status_code == 200 and other.json()["entries"] == []
    assert client.get("/api/audit", headers=_h(k["reader"])).status_code == 404


def test_filters_paging_and_reads_are_audited(
    world: tuple[Archive, TestClient, dict[str, str]],
) -> None:
    arch, client, k = world
    r = client.get(
        "/api/audit?action=GET%20*&user=r&limit=1&offset=1", headers=_h(k["admin"])
    ).json()["entries"]
    assert len(r) == 1 and r[0]["study"] == k["study_T2"]
    since = client.get("/api/audit?since=2999-01-01", headers=_h(k["admin"])).json()
    assert since["entries"] == []
    bad = client.get("/api/audit?since=yesterday", headers=_h(k["admin"]))
    assert bad.status_code == 400 and "since" in bad.text
    reads = query(arch.db, Filter(action="audit.read"))
    assert reads and reads[-1]["actor"] == "admin"
    assert json.loads(reads[-1]["detail"])["since"] == "2999-01-01"


def test_verify_names_the_first_broken_entry(
    world: tuple[Archive, TestClient, dict[str, str]],
) -> None:
    arch, client, k = world
    ok = client.get("/api/audit/verify", headers=_h(k["monitor"])).json()
    assert ok["ok"] is True and ok["first_broken"] is None and ok["entries"] >= 4
    with arch.db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET actor='someone else' WHERE seq=2"))
    broken = client.get("/api/audit/verify", headers=_h(k["monitor"])).json()
    assert broken["ok"] is False
    assert broken["first_broken"] == {"seq": 2, "reason": "content changed (hash mismatch)"}
    assert query(arch.db, Filter(action="audit.verify"))[-1]["actor"] == "mon"


@pytest.mark.parametrize("fmt", ["csv", "json", "fhir", "atna"])
def test_export_streams_every_format(
    world: tuple[Archive, TestClient, dict[str, str]], fmt: str
) -> None:
    arch, client, k = world
    r = client.get(f"/api/audit/export?format={fmt}", headers=_h(k["monitor"]))
    assert r.status_code == 200, r.text
    assert "attachment" in r.headers["content-disposition"]
    body = r.text
    assert k["study_T1"] in body and k["study_T2"] not in body
    if fmt == "csv":
        assert body.startswith("seq,at,actor") and len(body.strip().splitlines()) >= 3
    elif fmt == "json":
        assert all(e["trial"] in ("", "T1") for e in json.loads(body))
    elif fmt == "fhir":
        from fhir.resources.bundle import Bundle

        bundle = Bundle.model_validate_json(body)
        assert bundle.entry and len(bundle.entry) >= 2
    else:
        root = ET.fromstring(body.encode())
        assert root.tag == "AuditMessages" and len(root) >= 2
    exp = query(arch.db, Filter(action="audit.export"))[-1]
    assert exp["actor"] == "mon" and json.loads(exp["detail"])["format"] == fmt
    assert client.get("/api/audit/export?format=xlsx", headers=_h(k["admin"])).status_code == 422
