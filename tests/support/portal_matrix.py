"""Authorisation cells for the portal pages, merged into ``test_matrix.MATRIX``.

Pages answer like the API: a page or object the caller may not use is a 404
whose body is the one for a page that does not exist; forms without the
CSRF value are refused (403) before anything happens.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Check = Callable[[Any, str, str], None]
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"


def report_body(study: str) -> tuple[bytes, str]:
    """A structured report about ``study`` as the viewer's STOW-RS would send it."""
    from dicomfactory import make_dataset, to_bytes

    ds = make_dataset(study=study, rows=1, cols=1)
    ds.SOPClassUID = COMPREHENSIVE_SR
    ds.Modality = "SR"
    del ds.PixelData
    data = to_bytes(ds)
    boundary = "srboundary"
    body = (
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


_CSRF = re.compile(r'(name="csrf_token" value="|"X-CSRF-Token": ")[^"]*')


def _same(a: bytes, b: bytes) -> bool:
    """Bodies equal once the per-response CSRF value is taken out."""
    return _CSRF.sub("", a.decode()) == _CSRF.sub("", b.decode())


def portal_cells(
    visible: dict[str, set[str]], upload: dict[str, set[tuple[str, str]]]
) -> tuple[dict[tuple[str, str], Check], set[str]]:
    # The worklist also lists identified studies to the roles that may read them.
    listed = {role: set(objs) for role, objs in visible.items()}
    listed["site_coordinator"] |= {"D"}

    def worklist(w: Any, role: str, obj: str) -> None:
        if obj == "X":
            return
        r = w.get(role, "/worklist?limit=200")
        assert r.status_code == 200, r.text
        assert (w.studies[obj].study in r.text) == (obj in listed[role]), (role, obj)
        # identified names appear only for the site's coordinator
        assert ("SECRET PATIENT" in r.text) == ("D" in listed[role])

    def study(w: Any, role: str, obj: str) -> None:
        r = w.get(role, f"/studies/{w.studies[obj].study}")
        missing = w.get(role, f"/studies/{w.studies['X'].study}")
        if obj in listed[role]:
            assert r.status_code == 200, (role, obj)
            assert ("SECRET" in r.text) == (obj == "D")
        else:
            assert r.status_code == 404 == missing.status_code, (role, obj, r.status_code)
            assert _same(r.content, missing.content)

    def only(roles: set[str], url: str) -> Check:
        def check(w: Any, role: str, obj: str) -> None:
            if obj != "X":
                return
            r = w.get(role, url)
            assert r.status_code == (200 if role in roles else 404), (url, role, r.status_code)
            if r.status_code == 404:
                assert _same(r.content, w.get(role, "/no-such-page-at-all").content) or (
                    "There is no such page." in r.text
                )

        return check

    def upload_status(w: Any, role: str, obj: str) -> None:
        if obj != "X":
            return
        for trial, site in (("T1", "S1"), ("T1", "S2"), ("T2", "S1")):
            r = w.get(role, f"/upload/status?trial={trial}&site={site}")
            allowed = (trial, site) in upload.get(role, set())
            assert r.status_code == (200 if allowed else 404), (role, trial, site)

    def needs_csrf(path: str) -> Check:
        def check(w: Any, role: str, obj: str) -> None:
            if obj != "X":
                return
            r = w.request(role, "POST", path, data={"code": "123456"})
            assert r.status_code == 403, (path, role, r.status_code)

        return check

    def measurements(w: Any, role: str, obj: str) -> None:
        """A report is kept for a study the caller may read; any other is missing."""
        body, ctype = report_body(w.studies[obj].study)
        r = w.request(role, "POST", "/api/measurements", content=body,
                      headers={"Content-Type": ctype})  # fmt: skip
        assert r.status_code == (200 if obj in listed[role] else 404), (role, obj, r.text)

    def admin_form(path: str) -> Check:
        def check(w: Any, role: str, obj: str) -> None:
            if obj != "X":
                return
            r = w.request(role, "POST", path, data={"username": "departed", "op": "enable"})
            assert r.status_code == (403 if role == "administrator" else 404), (role, path)

        return check

    def public_page(w: Any, role: str, obj: str) -> None:
        if obj != "X" or role != "reader":
            return
        assert w.request(None, "GET", "/login").status_code == 200
        css = w.request(None, "GET", "/static/portal.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        assert w.request(None, "GET", "/static/..%2Fpages.py").status_code == 404

    everyone = {"administrator", "site_coordinator", "site_pacs", "data_manager", "reader",
                "monitor", "no_role"}  # fmt: skip
    cells: dict[tuple[str, str], Check] = {
        ("GET", "/"): only(everyone, "/"),
        ("GET", "/worklist"): worklist,
        ("GET", "/studies/{study}"): study,
        ("GET", "/upload"): only(set(upload), "/upload"),
        ("GET", "/upload/status"): upload_status,
        ("GET", "/qc"): only({"administrator", "data_manager"}, "/qc"),
        ("GET", "/reads"): only({"reader"}, "/reads"),
        ("GET", "/audit"): only({"administrator", "monitor"}, "/audit"),
        ("GET", "/audit/verify"): only({"administrator", "monitor"}, "/audit/verify"),
        ("GET", "/audit/export"): only({"administrator", "monitor"}, "/audit/export?format=csv"),
        ("GET", "/workspace"): only(everyone, "/workspace"),
        ("GET", "/admin"): only({"administrator"}, "/admin"),
        ("GET", "/account"): only(everyone, "/account"),
        ("POST", "/account/mfa"): needs_csrf("/account/mfa"),
        ("POST", "/account/mfa/confirm"): needs_csrf("/account/mfa/confirm"),
        ("POST", "/logout"): needs_csrf("/logout"),
        ("POST", "/login"): needs_csrf("/login"),
        ("POST", "/api/measurements"): measurements,
        ("POST", "/admin/roles"): admin_form("/admin/roles"),
        ("POST", "/admin/accounts"): admin_form("/admin/accounts"),
        ("POST", "/admin/users"): admin_form("/admin/users"),
        ("POST", "/admin/mfa"): admin_form("/admin/mfa"),
        ("GET", "/login"): public_page,
        ("GET", "/static/{name}"): public_page,
    }
    return cells, {"/login", "/static/{name}"}
