"""Authorisation cells for the research export API, merged into ``test_matrix.MATRIX``.

Exporting is the policy's ``export`` action: the global administrator (every
trial) and the data manager of T1. Everyone else gets exactly the answer for
a cohort or export that does not exist; nobody ever gets identified data.
"""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Callable
from typing import Any

from trialpacs.exports.cohort import CohortDefinition
from trialpacs.exports.saved import save_cohort

Check = Callable[[Any, str, str], None]
EXPORTERS: dict[str, set[str]] = {"administrator": {"T1", "T2"}, "data_manager": {"T1"}}
COHORT = "matrix-T1"


def _cohort(w: Any) -> str:
    return save_cohort(w.archive.db, COHORT, CohortDefinition("T1"), "matrix").ref


def _finished(w: Any, role: str, export_id: str) -> dict[str, Any]:
    """Poll the history until the background export is no longer running."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rows = {e["export_id"]: e for e in w.get(role, "/api/exports").json()}
        entry: dict[str, Any] = rows[export_id]
        if entry["state"] != "running":
            return entry
        time.sleep(0.05)
    raise AssertionError(f"export {export_id} still running")


def export_cells() -> dict[tuple[str, str], Check]:
    def save(w: Any, role: str, obj: str) -> None:
        if obj != "X":
            return
        for trial in ("T1", "T2", "T9"):
            body = {"name": f"m-{role}-{trial}", "definition": {"trial": trial}}
            r = w.request(role, "POST", "/api/cohorts", json=body)
            allowed = trial in EXPORTERS.get(role, set())
            assert r.status_code == (201 if allowed else 404), (role, trial, r.text)
        bad = w.request(role, "POST", "/api/cohorts", json={"name": "x", "definition": {}})
        assert bad.status_code == 400

    def listing(w: Any, role: str, obj: str) -> None:
        if obj != "X":
            return
        _cohort(w)
        r = w.get(role, "/api/cohorts")
        assert r.status_code == 200
        trials = {c["trial"] for c in r.json()}
        assert trials <= EXPORTERS.get(role, set()), (role, trials)
        assert (COHORT in {c["name"] for c in r.json()}) == ("T1" in EXPORTERS.get(role, set()))

    def preview(w: Any, role: str, obj: str) -> None:
        if obj != "X":
            return
        ref = _cohort(w)
        r = w.get(role, f"/api/cohorts/{ref}/preview")
        missing = w.get(role, "/api/cohorts/no-such-cohort/preview")
        assert missing.status_code == 404
        if role in EXPORTERS:
            assert r.status_code == 200, r.text
            # A and B are T1's published studies; identified D and E are never counted
            assert r.json()["counts"]["series"] == 2
            assert r.json()["counts"]["by_site"] == {"S1": 1, "S2": 1}
        else:
            assert r.status_code == 404
            assert r.json()["detail"] == missing.json()["detail"].replace("no-such-cohort", ref)

    def start(w: Any, role: str, obj: str) -> None:
        if obj != "X":
            return
        ref = _cohort(w)
        body = {"cohort": ref, "destination": "download"}
        r = w.request(role, "POST", "/api/exports", json=body)
        if role in EXPORTERS:
            assert r.status_code == 202, r.text  # checked now, written in the background
            assert r.json()["series"] == 2 and r.json()["state"] == "running"
            assert _finished(w, role, r.json()["export_id"])["state"] == "done"
            local = w.request(role, "POST", "/api/exports", json={**body, "destination": "/tmp"})
            assert local.status_code == 400  # no client-supplied paths
        else:
            missing = w.request(
                role, "POST", "/api/exports", json={**body, "cohort": "no-such-cohort"}
            )
            assert r.status_code == 404 == missing.status_code
            assert r.json()["detail"] == missing.json()["detail"].replace("no-such-cohort", ref)

    def history(w: Any, role: str, obj: str) -> None:
        if obj != "X":
            return
        r = w.get(role, "/api/exports")
        assert r.status_code == (200 if role in EXPORTERS else 404), role
        if role == "data_manager":
            assert {e["trial"] for e in r.json()} <= {"T1"}

    def download(w: Any, role: str, obj: str) -> None:
        if obj != "X":
            return
        ref = _cohort(w)
        made = w.request(
            "data_manager",
            "POST",
            "/api/exports",
            json={"cohort": ref, "destination": "download", "wait": True},
        ).json()
        url, export_id = made["download_url"], made["export_id"]
        # the signed link works without any other credential, for the one export it names
        r = w.client.get(url)
        assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
        names = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
        assert any(n.endswith("/manifest.csv") for n in names)
        assert sum(n.endswith(".dcm") for n in names) == 2
        forged = w.client.get(url[:-3] + "xyz")
        other = w.client.get(url.replace(export_id, "0" * 32))
        assert forged.status_code == other.status_code == 404
        # with one's own credentials instead of the link: only exporters of the trial
        plain = w.get(role, f"/api/exports/{export_id}/download")
        assert plain.status_code == (200 if role in EXPORTERS else 404), role

    return {
        ("POST", "/api/cohorts"): save,
        ("GET", "/api/cohorts"): listing,
        ("GET", "/api/cohorts/{cohort}/preview"): preview,
        ("POST", "/api/exports"): start,
        ("GET", "/api/exports"): history,
        ("GET", "/api/exports/{export}/download"): download,
    }
