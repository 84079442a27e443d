"""The export API as the portal uses it: start, follow in the history, download."""

from __future__ import annotations

import io
import time
import zipfile
from typing import Any

from fastapi.testclient import TestClient

from exports.support import World
from trialpacs.access.apikeys import create_key
from trialpacs.web.app import create_app


def test_background_export_then_download_from_the_history(world: World) -> None:
    key = create_key(world.archive.db, "dm", grants=["data_manager@T1"], scopes=["*"])
    client = TestClient(create_app(world.archive), headers={"Authorization": f"Bearer {key}"})
    saved = client.post(
        "/api/cohorts", json={"name": "ct", "definition": {"trial": "T1", "modalities": ["CT"]}}
    )
    assert saved.status_code == 201 and saved.json()["ref"] == "ct@1"
    preview = client.get("/api/cohorts/ct/preview").json()
    assert preview["counts"]["series"] == 2 and preview["counts"]["by_timepoint"] == {
        "BL": 1,
        "W12": 1,
    }
    started = client.post("/api/exports", json={"cohort": "ct", "destination": "download"})
    assert started.status_code == 202 and started.json()["state"] == "running"
    export_id = started.json()["export_id"]
    entry: dict[str, Any] = {}
    for _ in range(600):
        entry = next(e for e in client.get("/api/exports").json() if e["export_id"] == export_id)
        if entry["state"] != "running":
            break
        time.sleep(0.05)
    assert entry["state"] == "done" and entry["series"] == 2 and entry["instances"] == 4
    # the history hands out a fresh link for a finished download, usable without a key
    r = TestClient(create_app(world.archive)).get(entry["download_url"])
    assert r.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
    assert f"ct-v1-{export_id[:8]}/manifest.parquet" in names
    bad = client.post("/api/exports", json={"cohort": "ct", "destination": "ftp://x"})
    assert bad.status_code == 400 and "s3://bucket/prefix" in bad.json()["detail"]
