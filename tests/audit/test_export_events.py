"""Research exports leave audit entries: the routes (one per request, with the caller)
and the domain events (cohort versions saved, each export with its numbers, refusals)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from exports.support import World, build_world
from trialpacs.access.apikeys import create_key
from trialpacs.audit import verify
from trialpacs.audit.chain import Filter, query
from trialpacs.web.app import create_app


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = build_world(tmp_path)
    yield w
    w.archive.close()


def test_export_routes_and_events_are_audited(world: World) -> None:
    db = world.archive.db
    app = create_app(world.archive)

    def client(name: str, grant: str) -> TestClient:
        key = create_key(db, name, grants=[grant], scopes=["*"])
        return TestClient(app, headers={"Authorization": f"Bearer {key}"})

    dm, rita = client("dm", "data_manager@T1"), client("rita", "reader@T1")
    body = {"name": "knees", "definition": {"trial": "T1", "body_parts": ["KNEE"]}}
    assert dm.post("/api/cohorts", json=body).status_code == 201
    assert dm.get("/api/cohorts/knees@1/preview").status_code == 200
    assert rita.get("/api/cohorts/knees@1/preview").status_code == 404
    made = dm.post(
        "/api/exports", json={"cohort": "knees@1", "destination": "download", "wait": True}
    )
    assert made.status_code == 201
    refused = rita.post("/api/exports", json={"cohort": "knees", "destination": "download"})
    assert refused.status_code == 404
    export_id = made.json()["export_id"]
    anonymous = TestClient(app)
    assert anonymous.get(made.json()["download_url"]).status_code == 200

    def entries(action: str) -> list[dict[str, str]]:
        return query(db, Filter(action=action))

    (save,) = entries("POST /api/cohorts")
    assert (save["actor"], save["outcome"]) == ("dm", "success")
    (saved,) = entries("export.cohort.save")
    assert saved["object"] == "cohort=knees@1" and saved["trial"] == "T1"
    assert json.loads(saved["new_value"])["body_parts"] == ["KNEE"]
    previews = entries("GET /api/cohorts/{cohort}/preview")
    assert [(e["actor"], e["outcome"]) for e in previews] == [
        ("dm", "success"),
        ("rita", "failure"),
    ]
    runs = entries("export.run")
    assert [(e["actor"], e["outcome"]) for e in runs] == [("dm", "success"), ("rita", "denied")]
    detail = json.loads(runs[0]["detail"])
    assert detail["export_id"] == export_id and detail["destination_kind"] == "download"
    assert detail["series"] == 5 and runs[0]["object"] == "cohort=knees@1"
    (download,) = entries("GET /api/exports/{export}/download")
    # a link needs no other credential, and still names who it was issued to
    assert (download["actor"], download["outcome"]) == ("dm", "success")
    assert verify(db).ok
