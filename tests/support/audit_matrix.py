"""Authorisation cells for the audit API and read assignments (issue 8), merged
into ``test_matrix.MATRIX``.

The world stores studies A, B (T1), C (T2), L (no trial), D, E (identified,
T1), so the trail holds store entries of both trials. Audit: an
administrator reads everything, ``monitor@T1`` only entries of T1 (never
C's study nor trial T2), everyone else gets 404. Reads: a data manager or
administrator of the study's trial may assign (the reader named here does not
exist, so the answer is 400 naming that); anyone else, or a study outside the
caller's trial, gets the 404 of a missing study. A read that does not exist
(or is someone else's) is 404 for everybody.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Check = Callable[[Any, str, str], None]
AUDITORS = {"administrator", "monitor"}
_TRIAL = {"A": "T1", "B": "T1", "C": "T2", "L": "T1", "D": "T1", "E": "T1", "X": "T1"}
_ASSIGNABLE = {"administrator": {"A", "B", "C"}, "data_manager": {"A", "B"}}


def _audit_search(w: Any, role: str, obj: str) -> None:
    if obj not in ("A", "C"):
        return
    study = w.studies[obj].study
    r = w.get(role, f"/api/audit?object={study}&limit=50")
    if role not in AUDITORS:
        assert r.status_code == 404, (role, r.text)
        return
    assert r.status_code == 200, r.text
    entries = r.json()["entries"]
    sees = role == "administrator" or obj == "A"
    assert bool(entries) == sees, (role, obj, entries)
    if role == "monitor":
        everything = w.get(role, "/api/audit?limit=1000").json()["entries"]
        c_study = w.studies["C"].study
        assert all(e["trial"] != "T2" and e["study"] != c_study for e in everything)


def _audit_verify(w: Any, role: str, obj: str) -> None:
    if obj != "X":
        return
    r = w.get(role, "/api/audit/verify")
    if role in AUDITORS:
        assert r.status_code == 200 and r.json()["ok"] is True, r.text
    else:
        assert r.status_code == 404, (role, r.text)


def _audit_export(w: Any, role: str, obj: str) -> None:
    if obj not in ("A", "C"):
        return
    r = w.get(role, f"/api/audit/export?format=csv&object={w.studies[obj].study}")
    if role not in AUDITORS:
        assert r.status_code == 404, (role, r.text)
        return
    assert r.status_code == 200 and r.text.startswith("seq,at,actor"), r.text
    rows = r.text.strip().splitlines()[1:]
    assert bool(rows) == (role == "administrator" or obj == "A"), (role, obj)


def _reads_list(w: Any, role: str, obj: str) -> None:
    if obj != "X":
        return
    own = w.get(role, "/api/reads")
    assert own.status_code == 200 and own.json()["reads"] == [], own.text
    trial = w.get(role, "/api/reads?trial=T1")
    assert trial.status_code == (200 if role in _ASSIGNABLE else 404), (role, trial.text)


def _reads_assign(w: Any, role: str, obj: str) -> None:
    body = {"trial": _TRIAL[obj], "study": w.studies[obj].study, "reader": "nobody-here"}
    r = w.request(role, "POST", "/api/reads", json=body)
    if obj in _ASSIGNABLE.get(role, set()):
        assert r.status_code == 400 and "nobody-here" in r.text, (role, obj, r.text)
    else:
        missing = w.request(
            role, "POST", "/api/reads", json={**body, "study": w.studies["X"].study}
        )
        assert r.status_code == 404 and r.content == missing.content, (role, obj, r.text)


def _read_one(method: str, suffix: str) -> Check:
    def check(w: Any, role: str, obj: str) -> None:
        if obj != "X":
            return
        kw: dict[str, Any] = (
            {"json": {"password": "whatever-it-is-1", "meaning": "Reviewed"}}
            if method == "POST"
            else {}
        )
        r = w.request(role, method, f"/api/reads/987654{suffix}", **kw)
        assert r.status_code == 404, (role, r.text)

    return check


def audit_cells() -> dict[tuple[str, str], Check]:
    return {
        ("GET", "/api/audit"): _audit_search,
        ("GET", "/api/audit/verify"): _audit_verify,
        ("GET", "/api/audit/export"): _audit_export,
        ("GET", "/api/reads"): _reads_list,
        ("POST", "/api/reads"): _reads_assign,
        ("GET", "/api/reads/{read}"): _read_one("GET", ""),
        ("POST", "/api/reads/{read}/sign"): _read_one("POST", "/sign"),
    }
