"""Authorisation cells for the record routes (issue 12), merged into ``test_matrix.MATRIX``.

Records are published into T1/S1 (like study A) and T2/S1 (like study C);
whoever may read that study may list and download the record, anyone else
gets the answer of a record that does not exist. Upload follows the
identified-store rule of STOW-RS to the site.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from trialpacs.ingest.store import Placement, StoreOutcome, store_many
from trialpacs.records.dicomwrap import WrapInfo, wrap_text
from trialpacs.records.formats import RecordFormat
from trialpacs.records.identity import PatientIdentity

Check = Callable[[Any, str, str], None]
# where each object position's record lives
_PLACE = {"A": ("T1", "S1"), "C": ("T2", "S1")}
_MISSING = "1.2.826.0.1.3680043.99.12"
_PLANTED: dict[int, dict[str, str]] = {}


def _records(w: Any) -> dict[str, str]:
    """A published record per position, stored once per world: position -> SOP UID."""
    got = _PLANTED.get(id(w))
    if got is None:
        got = {}
        for obj, (trial, site) in _PLACE.items():
            info = WrapInfo(PatientIdentity(f"SUBJ-{obj}", f"SUBJECT^{obj}"))
            data = wrap_text("No acute findings.", "", RecordFormat.TEXT, info)
            where = Placement(collection="published", trial_id=trial, site_id=site)
            (out,) = store_many(w.archive, [data], placement=where)
            assert isinstance(out, StoreOutcome), out
            got[obj] = out.sop_uid
        _PLANTED[id(w)] = got
    return got


def records_cells(
    visible: dict[str, set[str]], upload: dict[str, set[tuple[str, str]]]
) -> dict[tuple[str, str], Check]:
    def download(w: Any, role: str, obj: str) -> None:
        if obj not in _PLACE:
            return
        sop = _records(w)[obj]
        r = w.get(role, f"/api/records/{sop}/download")
        missing = w.get(role, f"/api/records/{_MISSING}/download")
        if obj in visible[role]:
            assert r.status_code == 200, (role, obj, r.text)
            assert r.content == b"No acute findings."
        else:
            assert r.status_code == missing.status_code == 404, (role, obj)
            assert r.content == missing.content

    def listing(w: Any, role: str, obj: str) -> None:
        if obj not in _PLACE:
            return
        sop = _records(w)[obj]
        trial = _PLACE[obj][0]
        r = w.get(role, f"/api/trials/{trial}/records")
        assert r.status_code == 200
        assert (sop in r.text) == (obj in visible[role]), (role, obj)

    def upload_cell(w: Any, role: str, obj: str) -> None:
        if obj != "X":
            return
        for trial, site in (("T1", "S1"), ("T1", "S2"), ("T2", "S1"), ("T9", "S1")):
            r = w.request(
                role,
                "POST",
                f"/api/trials/{trial}/sites/{site}/records",
                files={"file": ("letter.txt", b"Discharge letter.")},
                data={"patient_id": f"P-{role}"},
            )
            allowed = (trial, site) in upload.get(role, set())
            assert r.status_code == (201 if allowed else 404), (role, trial, site, r.text)

    return {
        ("GET", "/api/records/{sop}/download"): download,
        ("GET", "/api/trials/{trial}/records"): listing,
        ("POST", "/api/trials/{trial}/sites/{site}/records"): upload_cell,
    }
