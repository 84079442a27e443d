"""The authorisation matrix: every route x role x object, each cell with its expected answer.

Objects are studies in every position that matters (own trial/site, other
site, other trial, identified, published, outside any trial, missing) and
workspaces (own, another user's). The route list is read from the app: a
route that is not in ``MATRIX`` fails ``test_every_route_is_in_the_matrix``.
A refusal must look exactly like a missing object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastapi.routing as fr
import pytest
from fastapi.testclient import TestClient
from pydicom.uid import generate_uid

from dicomfactory import make_bytes
from qc.support import plant_held
from support.audit_matrix import audit_cells
from support.export_matrix import export_cells
from support.portal_matrix import portal_cells
from support.records_matrix import records_cells
from trialpacs.access.apikeys import create_key
from trialpacs.access.policy import Principal
from trialpacs.access.workspace import Workspaces
from trialpacs.archive import Archive
from trialpacs.config import apply, load_text
from trialpacs.ingest.store import Placement, StoreOutcome, store_many
from trialpacs.settings import load_settings
from trialpacs.trials.intake import store_for_site
from trialpacs.web.app import create_app

ROLES: dict[str, list[str]] = {
    "administrator": ["administrator"],
    "site_coordinator": ["site_coordinator@T1/S1"],
    "site_pacs": ["site_pacs@T1/S1"],
    "data_manager": ["data_manager@T1"],
    "reader": ["reader@T1"],
    "monitor": ["monitor@T1"],
    "no_role": [],
}
# Which studies each role sees through the published DICOMweb API.
# A: T1/S1, B: T1/S2, C: T2/S1, L: published outside any trial,
# D: identified T1/S1, E: identified T1/S2, X: does not exist.
OBJECTS = ["A", "B", "C", "L", "D", "E", "X"]
VISIBLE: dict[str, set[str]] = {
    "administrator": {"A", "B", "C", "L"},
    "site_coordinator": {"A"},
    "site_pacs": set(),
    "data_manager": {"A", "B"},
    "reader": {"A", "B"},
    "monitor": set(),
    "no_role": set(),
}
# Identified search per trial site: only the coordinator of that site.
PHI: dict[str, set[tuple[str, str]]] = {"site_coordinator": {("T1", "S1")}}
# Identified upload per trial site.
UPLOAD: dict[str, set[tuple[str, str]]] = {
    "administrator": {("T1", "S1"), ("T1", "S2"), ("T2", "S1")},
    "site_coordinator": {("T1", "S1")},
    "site_pacs": {("T1", "S1")},
}
SITES = [("T1", "S1"), ("T1", "S2"), ("T2", "S1"), ("T9", "S1")]

CONFIG = """\
version: 1
regions:
  - id: eu
storage_backends:
  - name: q-eu
    kind: local
    path: {tmp}/q-eu
    region: eu
    purpose: identified
profiles:
  - name: basic
    extends: trial
sites:
  - {{id: S1, name: One, region: eu, identified_backend: q-eu}}
  - {{id: S2, name: Two, region: eu, identified_backend: q-eu}}
trials:
  - id: T1
    name: Trial one
    profile: basic
    deid_regions: [local, eu]
    sites: [{{site: S1}}, {{site: S2}}]
  - id: T2
    name: Trial two
    profile: basic
    deid_regions: [local, eu]
    sites: [{{site: S1}}]
"""


@dataclass
class Study:
    study: str
    series: str
    sop: str


@dataclass
class World:
    client: TestClient
    archive: Archive
    keys: dict[str, str]
    studies: dict[str, Study]
    held: str = ""  # a series held by QC in T1/S1 (de-identified UID)

    def get(self, role: str | None, url: str, **kw: Any) -> Any:
        return self.client.get(url, headers=self.headers(role, kw.pop("headers", {})), **kw)

    def request(self, role: str | None, method: str, url: str, **kw: Any) -> Any:
        headers = self.headers(role, kw.pop("headers", {}))
        return self.client.request(method, url, headers=headers, **kw)

    def headers(self, role: str | None, extra: dict[str, str]) -> dict[str, str]:
        if role is None:
            return extra
        return {"Authorization": f"Bearer {self.keys[role]}", **extra}


def _study(ds_bytes_kw: dict[str, Any] | None = None) -> tuple[Study, bytes]:
    st, se, sop = generate_uid(), generate_uid(), generate_uid()
    data = make_bytes(study=st, series=se, sop=sop, rows=4, cols=4, **(ds_bytes_kw or {}))
    return Study(st, se, sop), data


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp: Path = tmp_path_factory.mktemp("matrix")
    archive = Archive.open(load_settings(None, data_dir=tmp, cookie_secure=False))
    apply(archive, load_text(CONFIG.format(tmp=tmp)))
    studies: dict[str, Study] = {}
    for label, trial, site in (("A", "T1", "S1"), ("B", "T1", "S2"), ("C", "T2", "S1")):
        s, data = _study()
        where = Placement(collection="published", trial_id=trial, site_id=site)
        (out,) = store_many(archive, [data], placement=where)
        assert isinstance(out, StoreOutcome), out
        studies[label] = s
    s, data = _study()
    (out,) = store_many(archive, [data])
    assert isinstance(out, StoreOutcome), out
    studies["L"] = s
    for label, trial, site in (("D", "T1", "S1"), ("E", "T1", "S2")):
        s, data = _study({"patient_name": "SECRET^PATIENT"})
        (out,) = store_for_site(archive, [data], trial, site)
        assert isinstance(out, StoreOutcome), out
        studies[label] = s
    studies["X"] = Study(generate_uid(), generate_uid(), generate_uid())
    keys = {role: create_key(archive.db, role, grants=g, scopes=["*"]) for role, g in ROLES.items()}
    # another user's workspace, with a file nobody else may see
    create_key(archive.db, "departed", grants=[], scopes=["*"])
    Workspaces(archive.db, archive.store, 10**6).put(
        Principal("departed"), "departed", "file", "private-notes.txt", b"secret"
    )
    held = plant_held(archive, "T1", "S1")
    with TestClient(create_app(archive)) as client:
        yield World(client, archive, keys, studies, held)
    archive.close()


# --- route checks: each takes (world, role, object) and asserts the cell ----------

Check = Callable[[World, str, str], None]


OBJECT_ROUTES = [
    "/dicomweb/studies/{study}",
    "/dicomweb/studies/{study}/series/{series}",
    "/dicomweb/studies/{study}/series/{series}/instances/{sop}",
    "/dicomweb/studies/{study}/metadata",
    "/dicomweb/studies/{study}/series/{series}/metadata",
    "/dicomweb/studies/{study}/series/{series}/instances/{sop}/metadata",
    "/dicomweb/studies/{study}/series/{series}/instances/{sop}/frames/{frame_list}",
    "/dicomweb/studies/{study}/series/{series}/instances/{sop}/bulkdata/{tag}",
    "/dicomweb/studies/{study}/series/{series}/instances/{sop}/rendered",
    "/dicomweb/studies/{study}/series/{series}/instances/{sop}/frames/{frame}/rendered",
    "/dicomweb/studies/{study}/series/{series}/rendered",
    "/dicomweb/studies/{study}/rendered",
    "/dicomweb/studies/{study}/series/{series}/instances/{sop}/thumbnail",
    "/dicomweb/studies/{study}/series/{series}/instances/{sop}/frames/{frame}/thumbnail",
    "/dicomweb/studies/{study}/series/{series}/thumbnail",
    "/dicomweb/studies/{study}/thumbnail",
    "/dicomweb/wado",
    "/wado",
    "/dicomweb/studies/{study}/series",
    "/dicomweb/studies/{study}/instances",
    "/dicomweb/studies/{study}/series/{series}/instances",
]


def _url(template: str, s: Study) -> str:
    if template.endswith("/wado"):
        query = f"requestType=WADO&studyUID={s.study}&seriesUID={s.series}&objectUID={s.sop}"
        dicom = "&contentType=application/dicom" if template.startswith("/dicomweb") else ""
        return f"{template}?{query}{dicom}"
    return (
        template.replace("{study}", s.study)
        .replace("{series}", s.series)
        .replace("{sop}", s.sop)
        .replace("{frame_list}", "1")
        .replace("{frame}", "1")
        .replace("{tag}", "7FE00010")
    )


ACCEPT = {  # first match wins: frames/1/rendered is a rendering
    "rendered": "image/png",
    "thumbnail": "image/png",
    "metadata": "application/dicom+json",
    "frames": "multipart/related; type=application/octet-stream",
    "bulkdata": "multipart/related; type=application/octet-stream",
}


def _accept(path: str) -> dict[str, str]:
    for word, value in ACCEPT.items():
        if word in path:
            return {"Accept": value}
    if "/wado" in path:
        return {}
    return {"Accept": 'multipart/related; type="application/dicom"'}


def retrieval(path: str) -> Check:
    """WADO-RS/WADO-URI: 200 when visible; otherwise the same 404 as a missing object."""

    def check(w: World, role: str, obj: str) -> None:
        url = _url(path, w.studies[obj])
        r = w.get(role, url, headers=_accept(path))
        if obj in VISIBLE[role]:
            assert r.status_code == 200, (url, r.text)
        else:
            missing = w.get(role, _url(path, w.studies["X"]), headers=_accept(path))
            assert r.status_code == 404 == missing.status_code, (url, r.status_code)
            assert r.content == missing.content  # same words: nothing tells them apart

    return check


def qido_under(path: str) -> Check:
    """QIDO below a study: results only for a visible study; otherwise exactly like missing."""

    def check(w: World, role: str, obj: str) -> None:
        r = w.get(role, _url(path, w.studies[obj]))
        assert r.status_code == 200
        assert (len(r.json()) > 0) == (obj in VISIBLE[role]), (path, role, obj)

    return check


def qido_list(path: str) -> Check:
    """QIDO lists: exactly the visible studies, filtered in SQL (so paging stays right)."""

    def check(w: World, role: str, obj: str) -> None:
        r = w.get(role, path)
        assert r.status_code == 200
        uids = {item["0020000D"]["Value"][0] for item in r.json()}
        assert (w.studies[obj].study in uids) == (obj in VISIBLE[role]), (path, role, obj)
        if obj == "A":  # paging counts only visible rows
            paged = w.get(role, path + "?limit=1&offset=0").json()
            assert len(paged) == min(1, len(VISIBLE[role]))

    return check


def stow(path: str) -> Check:
    def check(w: World, role: str, obj: str) -> None:
        if obj != "X":
            return  # a new instance per role is enough: STOW creates, it does not read
        s, data = _study()
        url = "/dicomweb/studies" if path == "/dicomweb/studies" else f"/dicomweb/studies/{s.study}"
        body, ctype = _multipart(data)
        r = w.request(role, "POST", url, content=body, headers={"Content-Type": ctype})
        expected = 200 if role == "administrator" else 404
        assert r.status_code == expected, (role, r.text)

    return check


def _multipart(data: bytes) -> tuple[bytes, str]:
    boundary = "matrixboundary"
    body = (
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


def trial_stow(w: World, role: str, obj: str) -> None:
    if obj != "X":
        return
    for trial, site in SITES:
        _, data = _study()
        body, ctype = _multipart(data)
        r = w.request(
            role,
            "POST",
            f"/dicomweb/trials/{trial}/sites/{site}/studies",
            content=body,
            headers={"Content-Type": ctype},
        )
        expected = 200 if (trial, site) in UPLOAD.get(role, set()) else 404
        assert r.status_code == expected, (role, trial, site, r.text)


def trial_search(w: World, role: str, obj: str) -> None:
    if obj != "X":
        return
    for trial, site in SITES:
        r = w.get(role, f"/dicomweb/trials/{trial}/sites/{site}/studies")
        if (trial, site) in PHI.get(role, set()):
            assert r.status_code == 200
            uids = {i["0020000D"]["Value"][0] for i in r.json()}
            assert w.studies["D"].study in uids and w.studies["E"].study not in uids
        else:
            assert r.status_code == 404, (role, trial, site)


# The trial/site each object is asked under, below the identified prefix.
OBJECT_SITE = {"A": "T1/S1", "B": "T1/S2", "C": "T2/S1", "L": "T1/S1", "D": "T1/S1"}
OBJECT_SITE |= {"E": "T1/S2", "X": "T1/S1"}
IDENTIFIED = "/dicomweb/trials/{trial}/sites/{site}/studies"
IDENTIFIED_QIDO = [
    IDENTIFIED + "/{study}/series",
    IDENTIFIED + "/{study}/series/{series}/instances",
]
IDENTIFIED_RETRIEVAL = [
    IDENTIFIED + "/{study}/metadata",
    IDENTIFIED + "/{study}/series/{series}/metadata",
    IDENTIFIED + "/{study}/series/{series}/instances/{sop}/metadata",
    IDENTIFIED + "/{study}/series/{series}/instances/{sop}",
    *(IDENTIFIED + p.removeprefix("/dicomweb/studies") for p in OBJECT_ROUTES[6:16]),
]


def _identified_url(template: str, s: Study, where: str) -> str:
    trial, site = where.split("/")
    return _url(template.replace("{trial}", trial).replace("{site}", site), s)


def identified(path: str) -> Check:
    """Identified QIDO/WADO: only the coordinator of the site sees its quarantined
    study; anyone else, any other object: exactly the answer for a missing one."""

    def check(w: World, role: str, obj: str) -> None:
        where = OBJECT_SITE[obj]
        headers = _accept(path)
        r = w.get(role, _identified_url(path, w.studies[obj], where), headers=headers)
        missing = w.get(role, _identified_url(path, w.studies["X"], where), headers=headers)
        phi = tuple(where.split("/")) in PHI.get(role, set())
        if phi and obj == "D":
            assert r.status_code == 200, (path, r.text)
            if "metadata" in path or path in IDENTIFIED_QIDO:
                body = r.json()
                assert body and all(i["0020000D"]["Value"][0] == w.studies["D"].study for i in body)
                if "metadata" in path:
                    assert body[0]["00100010"]["Value"][0]["Alphabetic"] == "SECRET^PATIENT"
            elif any(word in path for word in ("frames", "bulkdata", "rendered", "thumbnail")):
                assert r.content and r.headers["content-type"].split(";")[0] in (
                    "multipart/related",
                    "image/png",
                ), (path, r.headers)
            else:
                assert w.studies["D"].sop.encode() in r.content
            return
        assert r.status_code == missing.status_code, (path, role, obj)
        assert r.content == missing.content
        if path in IDENTIFIED_QIDO and phi:
            assert r.json() == []
        else:
            assert r.status_code == 404, (path, role, obj)

    return check


def pipeline_status(w: World, role: str, obj: str) -> None:
    if obj == "X":
        allowed = role in ("administrator", "data_manager")
        assert w.get(role, "/api/pipeline/status").status_code == (200 if allowed else 404)


# Who may see and decide the QC queue of T1 (the held series is in T1/S1).
QC_VISIBLE = {"administrator", "data_manager"}
QC_MISSING = "1.2.826.0.1.3680043.99.1"


def qc_queue(w: World, role: str, obj: str) -> None:
    if obj != "X":
        return
    r = w.get(role, "/api/qc/queue")
    assert r.status_code == 200, r.text
    assert (w.held in {i["series_uid"] for i in r.json()}) == (role in QC_VISIBLE), role
    other = w.get(role, "/api/qc/queue?trial=T2")
    assert other.status_code == 200 and other.json() == []


def qc_series(method: str, suffix: str) -> Check:
    """Thumbnail and decision: a caller without QC rights gets exactly the missing answer."""

    def check(w: World, role: str, obj: str) -> None:
        if obj != "X":
            return
        body = {"decision": "approve", "password": "not-the-password-1"}
        kw: dict[str, Any] = {"json": body} if method == "POST" else {}
        r = w.request(role, method, f"/api/qc/series/{w.held}/{suffix}", **kw)
        missing = w.request(role, method, f"/api/qc/series/{QC_MISSING}/{suffix}", **kw)
        assert missing.status_code == 404
        if role in QC_VISIBLE:
            # A decision needs a password signature: an API key's account has none.
            assert r.status_code == (403 if method == "POST" else 200), (role, r.text)
        else:
            assert r.status_code == 404 and r.content == missing.content, (role, r.text)

    return check


def workspace(method: str, path: str) -> Check:
    """Own workspace works for everyone signed in; another user's is never reachable."""

    def check(w: World, role: str, obj: str) -> None:
        if obj != "X":
            return
        name = f"{role}-note.txt"
        url = path.replace("{name}", name)
        if method == "PUT":
            r = w.request(role, "PUT", url, content=b'{"a": 1}')
            assert r.status_code == 201
            return
        if "{name}" in path or path == "/workspace/settings":  # something to read or delete
            assert w.request(role, "PUT", url, content=b'{"a": 1}').status_code == 201
        r = w.request(role, method, url)
        assert r.status_code in (200, 204), (method, url, r.text)
        if method == "GET" and path in ("/workspace/files", "/workspace/annotations"):
            assert "private-notes.txt" not in r.text
        # the other user's file by name: as missing as a name that never existed
        other = w.request(role, "GET", "/workspace/files/private-notes.txt")
        assert other.status_code == 404

    return check


def admin_delete_workspace(w: World, role: str, obj: str) -> None:
    if obj != "X":
        return
    r = w.request(role, "DELETE", "/admin/users/nobody-at-all/workspace")
    assert r.status_code == 404
    if role != "administrator":
        r = w.request(role, "DELETE", "/admin/users/departed/workspace")
        assert r.status_code == 404


def metrics_route(w: World, role: str, obj: str) -> None:
    """Operations figures: an administrator grant with the metrics scope; anyone else: 404."""
    if obj != "X":
        return
    r = w.get(role, "/metrics")
    if role == "administrator":
        assert r.status_code == 200 and "trialpacs_http_requests_total" in r.text
    else:
        assert r.status_code == 404, (role, r.status_code)


def auth_route(method: str, path: str) -> Check:
    expected = {
        "/auth/me": 200,
        "/auth/logout": 200,
        "/auth/session/token": 404,  # only for a browser session
        "/auth/mfa/enrol": 404,  # service accounts have no second factor
        "/auth/mfa/confirm": 400,
        "/auth/oidc/login": 404,  # not configured here
        "/auth/oidc/callback": 404,
        "/auth/saml/login": 404,
        "/auth/saml/acs": 404,
        "/auth/saml/metadata": 404,
        "/auth/login": 422,  # no body
        "/auth/token/refresh": 422,
        "/auth/reauth": 409,  # signing re-authenticates these accounts by password
    }[path]

    def check(w: World, role: str, obj: str) -> None:
        if obj != "X":
            return
        kw: dict[str, Any] = {"json": {"code": "123456"}} if path == "/auth/mfa/confirm" else {}
        if path == "/auth/reauth":
            kw = {"json": {"purpose": "read:1"}}
        r = w.request(role, method, path, **kw)
        assert r.status_code == expected, (path, role, r.text)

    return check


def public(method: str, path: str) -> Check:
    """No data behind it: the same answer with or without credentials."""

    def check(w: World, role: str, obj: str) -> None:
        if obj != "X" or role != "reader":
            return
        url = path.replace("{path:path}", "index.html")
        a = w.request(None, method, url)
        b = w.request(role, method, url)
        assert a.status_code == b.status_code and a.status_code < 500

    return check


QIDO_UNDER = OBJECT_ROUTES[-3:]
RETRIEVAL = OBJECT_ROUTES[:-3]
QIDO_LISTS = ("/dicomweb/studies", "/dicomweb/series", "/dicomweb/instances")
MATRIX: dict[tuple[str, str], Check] = {
    **{("GET", p): retrieval(p) for p in RETRIEVAL},
    **{("GET", p): qido_under(p) for p in QIDO_UNDER},
    **{
        ("GET", p): qido_list(p)
        for p in ("/dicomweb/studies", "/dicomweb/series", "/dicomweb/instances")
    },
    ("POST", "/dicomweb/studies"): stow("/dicomweb/studies"),
    ("POST", "/dicomweb/studies/{study}"): stow("/dicomweb/studies/{study}"),
    ("POST", "/dicomweb/trials/{trial}/sites/{site}/studies"): trial_stow,
    ("GET", "/dicomweb/trials/{trial}/sites/{site}/studies"): trial_search,
    **{("GET", p): identified(p) for p in IDENTIFIED_QIDO + IDENTIFIED_RETRIEVAL},
    ("GET", "/api/pipeline/status"): pipeline_status,
    ("GET", "/api/qc/queue"): qc_queue,
    ("GET", "/api/qc/series/{series}/thumbnail"): qc_series("GET", "thumbnail"),
    ("POST", "/api/qc/series/{series}/decision"): qc_series("POST", "decision"),
    **{
        (m, p): workspace(m, p)
        for m, p in [
            ("GET", "/workspace/files"),
            ("PUT", "/workspace/files/{name}"),
            ("GET", "/workspace/files/{name}"),
            ("DELETE", "/workspace/files/{name}"),
            ("GET", "/workspace/settings"),
            ("PUT", "/workspace/settings"),
            ("GET", "/workspace/annotations"),
            ("PUT", "/workspace/annotations/{name}"),
            ("GET", "/workspace/annotations/{name}"),
            ("DELETE", "/workspace/annotations/{name}"),
            ("GET", "/workspace/usage"),
        ]
    },
    ("DELETE", "/admin/users/{username}/workspace"): admin_delete_workspace,
    **{
        (m, p): auth_route(m, p)
        for m, p in [
            ("POST", "/auth/login"),
            ("POST", "/auth/token/refresh"),
            ("POST", "/auth/logout"),
            ("GET", "/auth/me"),
            ("GET", "/auth/session/token"),
            ("POST", "/auth/mfa/enrol"),
            ("POST", "/auth/mfa/confirm"),
            ("GET", "/auth/oidc/login"),
            ("GET", "/auth/oidc/callback"),
            ("GET", "/auth/saml/login"),
            ("POST", "/auth/saml/acs"),
            ("GET", "/auth/saml/metadata"),
            ("POST", "/auth/reauth"),
        ]
    },
    **{
        ("GET", p): public("GET", p)
        for p in ("/health", "/viewer", "/viewer/app-config.js", "/viewer/{path:path}")
    },
    ("GET", "/ready"): public("GET", "/ready"),
    ("GET", "/metrics"): metrics_route,
}
PORTAL, PORTAL_PUBLIC = portal_cells(VISIBLE, UPLOAD)
MATRIX |= PORTAL
MATRIX |= export_cells()
MATRIX |= records_cells(VISIBLE, UPLOAD)
MATRIX |= audit_cells()
# FastAPI's own documentation pages: no data, no check needed beyond being public.
FRAMEWORK = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
PUBLIC_PATHS = {
    "/health",
    "/ready",
    "/viewer",
    "/viewer/app-config.js",
    "/viewer/{path:path}",
    "/auth/login",
    "/auth/token/refresh",
    "/auth/oidc/login",
    "/auth/oidc/callback",
    "/auth/saml/login",
    "/auth/saml/acs",
    "/auth/saml/metadata",
    *PORTAL_PUBLIC,
}


def app_routes(world: World) -> set[tuple[str, str]]:
    def walk(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, str]]:
        for r in routes:
            if isinstance(r, fr._IncludedRouter):
                yield from walk(r.original_router.routes, prefix + (r.include_context.prefix or ""))
            elif getattr(r, "path", None) not in FRAMEWORK:
                for m in sorted(set(getattr(r, "methods", None) or []) - {"HEAD"}):
                    yield m, prefix + r.path

    return set(walk(world.client.app.router.routes))  # type: ignore[attr-defined]


def test_every_route_is_in_the_matrix(world: World) -> None:
    routes = app_routes(world)
    missing = routes - set(MATRIX)
    assert not missing, f"routes without authorisation cells: {sorted(missing)}"
    assert not set(MATRIX) - routes, "matrix names routes the app does not have"


CELLS = [(route, role, obj) for route in MATRIX for role in ROLES for obj in OBJECTS]


@pytest.mark.parametrize(
    ("route", "role", "obj"), CELLS, ids=lambda v: v if isinstance(v, str) else " ".join(v)
)
def test_cell(world: World, route: tuple[str, str], role: str, obj: str) -> None:
    MATRIX[route](world, role, obj)


@pytest.mark.parametrize("route", sorted(MATRIX), ids=" ".join)
def test_without_credentials(world: World, route: tuple[str, str]) -> None:
    method, path = route
    if path in PUBLIC_PATHS:
        return
    url = path
    for name in ("{study}", "{series}", "{sop}"):
        url = url.replace(name, "1.2.3")
    url = (
        url.replace("{frame_list}", "1")
        .replace("{frame}", "1")
        .replace("{tag}", "7FE00010")
        .replace("{name}", "x")
        .replace("{username}", "x")
        .replace("{trial}", "T1")
        .replace("{site}", "S1")
    )
    r = world.request(None, method, url)
    assert r.status_code == 401, (method, url, r.status_code)


def test_admin_deletes_departed_workspace_without_reading(world: World) -> None:
    ws = Workspaces(world.archive.db, world.archive.store, 10**6)
    admin = Principal("administrator", kind="service", grants=())
    with pytest.raises(Exception, match="not found"):
        ws.get(admin, "departed", "file", "private-notes.txt")
    r = world.request("administrator", "DELETE", "/admin/users/departed/workspace")
    assert r.status_code == 204
    assert ws.list(Principal("departed"), "departed", "file") == []
