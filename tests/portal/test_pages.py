"""The portal in-process: sign-in with CSRF and MFA, pages per role, headers, no PHI leaks."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
from fastapi.testclient import TestClient
from pydicom.uid import generate_uid

from dicomfactory import make_bytes, make_dataset, to_bytes
from trialpacs.access import users
from trialpacs.archive import Archive
from trialpacs.audit.chain import AuditEvent, Filter, append_many, query
from trialpacs.config import apply, current, load_text
from trialpacs.ingest.store import Placement, StoreOutcome, store_many
from trialpacs.portal import worklist
from trialpacs.settings import load_settings
from trialpacs.trials.intake import store_for_site
from trialpacs.web.app import create_app

PASSWORD = "portal-Pass-phrase-93"
NEW_PASSWORD = "her-own-Phrase-2718"
CONFIG = """\
version: 1
regions: [{{id: eu}}]
storage_backends:
  - {{name: q-eu, kind: local, path: {tmp}/q-eu, region: eu, purpose: identified}}
profiles: [{{name: basic, extends: trial}}]
sites:
  - {{id: S1, name: One, region: eu, identified_backend: q-eu}}
trials:
  - {{id: T1, name: Trial one, profile: basic, deid_regions: [local, eu], sites: [{{site: S1}}]}}
  - {{id: T2, name: Trial two, profile: basic, deid_regions: [local, eu], sites: [{{site: S1}}]}}
"""
USERS = {
    "rita": "reader@T1",
    "cora": "site_coordinator@T1/S1",
    "mona": "monitor@T1",
    "dana": "data_manager@T1",
    "adam": "administrator",
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Archive, dict[str, str]]]:
    tmp: Path = tmp_path_factory.mktemp("portal")
    archive = Archive.open(load_settings(None, data_dir=tmp, cookie_secure=False))
    apply(archive, load_text(CONFIG.format(tmp=tmp)))
    studies: dict[str, str] = {}
    for label, trial in (("T1", "T1"), ("T2", "T2")):
        st = generate_uid()
        data = make_bytes(study=st, series=generate_uid(), sop=generate_uid(), rows=4, cols=4)
        where = Placement(collection="published", trial_id=trial, site_id="S1")
        (out,) = store_many(archive, [data], placement=where)
        assert isinstance(out, StoreOutcome)
        studies[label] = st
    st = generate_uid()
    data = make_bytes(study=st, series=generate_uid(), sop=generate_uid(), rows=4, cols=4,
                      patient_name="SECRET^PATIENT")  # fmt: skip
    (out,) = store_for_site(archive, [data], "T1", "S1")
    assert isinstance(out, StoreOutcome)
    studies["identified"] = st
    for name, grant in USERS.items():
        users.add_user(archive.db, name, password=PASSWORD)
        users.grant(archive.db, name, grant)
    yield archive, studies
    archive.close()


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def sign_in(
    client: TestClient, username: str, otp: str | None = None, password: str = PASSWORD
) -> None:
    token = _csrf(client.get("/login").text)
    form = {"csrf_token": token, "username": username, "password": password}
    if otp:
        form["otp"] = otp
    r = client.post("/login", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/worklist"


@pytest.fixture
def client(world: tuple[Archive, dict[str, str]]) -> Iterator[TestClient]:
    with TestClient(create_app(world[0])) as c:
        yield c


def test_sign_in_needs_the_csrf_value_and_the_right_password(client: TestClient) -> None:
    page = client.get("/login")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    token = _csrf(page.text)
    form = {"username": "rita", "password": PASSWORD}
    assert client.post("/login", data=form).status_code == 403  # no CSRF value
    bad = client.post("/login", data={**form, "csrf_token": "x" * 43})
    assert bad.status_code == 403
    wrong = client.post("/login", data={**form, "password": "nope", "csrf_token": token})
    assert wrong.status_code == 401 and "Sign-in failed" in wrong.text
    ok = client.post("/login", data={**form, "csrf_token": token}, follow_redirects=False)
    assert ok.status_code == 303
    assert "tp_session" in ok.headers["set-cookie"] and "HttpOnly" in ok.headers["set-cookie"]


def test_worklist_shows_only_the_callers_trials(
    client: TestClient, world: tuple[Archive, dict[str, str]]
) -> None:
    _, studies = world
    sign_in(client, "rita")
    r = client.get("/worklist")
    assert r.status_code == 200
    assert studies["T1"] in r.text and studies["T2"] not in r.text
    assert studies["identified"] not in r.text and "SECRET" not in r.text
    assert "Open in viewer" in r.text and "/thumbnail" in r.text
    assert client.get(f"/studies/{studies['T1']}").status_code == 200
    refused = client.get(f"/studies/{studies['T2']}")
    missing = client.get(f"/studies/{generate_uid()}")
    assert refused.status_code == missing.status_code == 404
    # filters
    assert studies["T1"] not in client.get("/worklist?trial=T2").text
    assert client.get("/worklist?date_from=yesterday").status_code == 400
    # the nav offers only what the role may use
    assert 'href="/upload"' not in r.text and 'href="/audit"' not in r.text
    assert client.get("/upload").status_code == 404
    assert client.get("/audit").status_code == 404


def test_identified_rows_only_for_the_sites_coordinator(
    client: TestClient, world: tuple[Archive, dict[str, str]]
) -> None:
    _, studies = world
    sign_in(client, "cora")
    r = client.get("/worklist")
    assert studies["identified"] in r.text and "SECRET PATIENT" in r.text
    assert studies["T2"] not in r.text
    up = client.get("/upload")
    assert up.status_code == 200 and 'value="T1/S1"' in up.text and "T2/S1" not in up.text
    status = client.get("/upload/status?trial=T1&site=S1")
    assert status.status_code == 200 and "Received series" in status.text
    assert client.get("/upload/status?trial=T2&site=S1").status_code == 404


def test_sign_out_ends_the_session(client: TestClient) -> None:
    sign_in(client, "rita")
    token = _csrf(client.get("/worklist").text)
    r = client.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    after = client.get("/worklist")
    assert after.status_code == 401 and 'action="/login"' in after.text


def test_mfa_enrolment_then_the_code_is_asked(client: TestClient) -> None:
    sign_in(client, "dana")
    account = client.get("/account")
    assert "No second factor yet" in account.text
    r = client.post("/account/mfa", data={"csrf_token": _csrf(account.text)})
    assert r.status_code == 200
    assert 'src="data:image/png;base64,' in r.text
    secret = re.search(r'id="mfa-secret">([A-Z2-7]+)<', r.text)
    assert secret
    totp = pyotp.TOTP(secret.group(1))
    done = client.post(
        "/account/mfa/confirm", data={"csrf_token": _csrf(r.text), "code": totp.now()}
    )
    assert done.status_code == 200 and "authenticator app is enrolled" in done.text
    client.cookies.clear()
    token = _csrf(client.get("/login").text)
    form = {"csrf_token": token, "username": "dana", "password": PASSWORD}
    asked = client.post("/login", data=form)
    assert asked.status_code == 401 and 'name="otp"' in asked.text
    sign_in(client, "dana", otp=totp.at(time.time() + 30))


def test_monitor_filters_verifies_and_exports_the_audit_trail(
    client: TestClient, world: tuple[Archive, dict[str, str]]
) -> None:
    archive, studies = world
    sign_in(client, "rita")
    client.get(f"/studies/{studies['T1']}")
    client.cookies.clear()
    sign_in(client, "adam")  # a global auditor sees every entry
    r = client.get("/audit?user=rita")
    assert r.status_code == 200 and "GET /studies/{study}" in r.text
    assert client.get("/audit/verify").text.count("Intact") == 1
    csv = client.get("/audit/export?format=csv&user=rita")
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert "rita" in csv.text and "attachment" in csv.headers["content-disposition"]
    assert client.get("/audit/export?format=pdf").status_code == 400
    assert client.get("/audit?since=not-a-date").status_code == 400
    client.cookies.clear()
    sign_in(client, "mona")  # a trial's monitor sees that trial's entries only
    seen = client.get("/audit/export?format=json").json()
    assert seen and "T2" not in {e["trial"] for e in seen}
    assert studies["T2"] not in {e["study"] for e in seen}
    # rita's view of a T1 study names no trial, but the study is placed in T1
    assert any(e["actor"] == "rita" and e["study"] == studies["T1"] for e in seen)
    assert client.get("/audit?trial=T2").text.count("No entries match") == 1
    # the page views themselves are in the trail
    assert query(archive.db, Filter(user="mona", action="GET /audit"))


def test_admin_sees_trials_and_changes_roles_and_accounts(
    client: TestClient, world: tuple[Archive, dict[str, str]]
) -> None:
    archive, studies = world
    users.add_user(archive.db, "vera", password=PASSWORD)
    sign_in(client, "adam")
    r = client.get("/admin")
    assert r.status_code == 200
    for text in ("Trial one", "site_coordinator@T1/S1", "monitor@T1", "trialpacs apply"):
        assert text in r.text
    token = _csrf(r.text)
    form = {"csrf_token": token, "username": "vera", "grant": "reader@T2", "op": "grant"}
    assert client.post("/admin/roles", data={**form, "csrf_token": ""}).status_code == 403
    done = client.post("/admin/roles", data=form)
    assert done.status_code == 200 and "reader@T2" in done.text and "Done." in done.text
    bad = client.post("/admin/roles", data={**form, "grant": "emperor@T2"})
    assert bad.status_code == 400 and "unknown role" in bad.text
    client.cookies.delete("tp_session")
    sign_in(client, "vera")
    assert studies["T2"] in client.get("/worklist").text
    client.cookies.delete("tp_session")
    sign_in(client, "adam")
    token = _csrf(client.get("/admin").text)
    client.post("/admin/roles", data={**form, "csrf_token": token, "op": "revoke"})
    off = client.post("/admin/accounts", data={"csrf_token": token, "username": "vera",
                                               "op": "disable"})  # fmt: skip
    assert off.status_code == 200
    trail = {(e["action"], e["actor"]) for e in query(archive.db, Filter(object="vera"))}
    assert {("auth.role.grant", "adam"), ("auth.role.revoke", "adam")} <= trail
    assert ("auth.user.disable", "adam") in trail
    client.cookies.delete("tp_session")
    token = _csrf(client.get("/login").text)
    login = {"csrf_token": token, "username": "vera", "password": PASSWORD}
    assert client.post("/login", data=login).status_code == 401
    # anyone else: the forms do not exist
    client.cookies.clear()
    sign_in(client, "mona")
    token = _csrf(client.get("/worklist").text)
    assert client.post("/admin/roles", data={**form, "csrf_token": token}).status_code == 404


def test_static_files_and_htmx_are_served_locally(client: TestClient) -> None:
    page = client.get("/login").text
    assert 'src="/static/htmx.min.js"' in page and "<script>" not in page
    htmx = client.get("/static/htmx.min.js")
    assert htmx.status_code == 200 and b"htmx" in htmx.content[:2000]
    assert client.get("/static/../render.py").status_code == 404


def test_viewer_reports_are_kept_in_the_readers_workspace(
    client: TestClient, world: tuple[Archive, dict[str, str]]
) -> None:
    from support.portal_matrix import report_body

    _, studies = world
    sign_in(client, "rita")
    body, ctype = report_body(studies["T1"])
    headers = {"Content-Type": ctype, "Origin": "http://testserver"}
    r = client.post("/api/measurements", content=body, headers=headers)
    assert r.status_code == 200, r.text
    sop = r.json()["00081199"]["Value"][0]["00081155"]["Value"][0]
    page = client.get("/workspace")
    assert f"{sop}.dcm" in page.text
    saved = client.get(f"/workspace/annotations/{sop}.dcm")
    assert saved.status_code == 200 and saved.content[128:132] == b"DICM"
    # not a report: refused, naming the problem; another trial's study: missing
    image = make_bytes(study=studies["T1"])
    boundary = ctype.rsplit("=", 1)[1]
    plain = body.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n" + image + f"\r\n--{boundary}--\r\n".encode()
    assert client.post("/api/measurements", content=plain, headers=headers).status_code == 409
    other, _ = report_body(studies["T2"])
    assert client.post("/api/measurements", content=other, headers=headers).status_code == 404


def test_worklist_time_point_filter_runs_in_sql(
    client: TestClient, world: tuple[Archive, dict[str, str]]
) -> None:
    archive, studies = world
    st = generate_uid()
    ds = make_dataset(study=st, series=generate_uid(), sop=generate_uid(), rows=4, cols=4)
    ds.ClinicalTrialTimePointID = "W12"
    where = Placement(collection="published", trial_id="T1", site_id="S1")
    (out,) = store_many(archive, [to_bytes(ds)], placement=where)
    assert isinstance(out, StoreOutcome)
    sign_in(client, "rita")
    found = client.get("/worklist?timepoint=W12").text
    assert st in found and studies["T1"] not in found and "W12" in found
    assert st not in client.get("/worklist?timepoint=BASELINE").text
    # the filter is a column condition, not a scan over instance metadata
    stmt = worklist._statement(worklist.Filters(timepoint="W12"), None)
    assert "timepoint_id" in str(stmt)


def test_audit_page_pages_back_from_the_newest_entry(
    client: TestClient, world: tuple[Archive, dict[str, str]]
) -> None:
    archive, _ = world
    sign_in(client, "rita")
    for _ in range(5):
        client.get("/workspace")
    seqs = [e["seq"] for e in query(archive.db, Filter(user="rita", action="GET /workspace"))]
    client.cookies.clear()
    sign_in(client, "adam")
    base = "/audit?user=rita&action=GET+/workspace&limit=2"
    first = client.get(base)
    assert first.status_code == 200
    shown = [int(s) for s in re.findall(r"<tr class=\"\w+\">\s*<td>(\d+)</td>", first.text)]
    assert shown == seqs[::-1][:2]
    assert 'id="audit-older"' in first.text and 'id="audit-newer"' not in first.text
    older = re.search(r'id="audit-older" href="([^"]+)"', first.text)
    assert older
    second = client.get(older.group(1).replace("&amp;", "&"))
    shown = [int(s) for s in re.findall(r"<tr class=\"\w+\">\s*<td>(\d+)</td>", second.text)]
    assert shown == seqs[::-1][2:4]
    assert 'id="audit-newer"' in second.text and "user=rita" in second.text
    last = client.get(f"{base}&offset={len(seqs) - 1}")
    assert 'id="audit-older"' not in last.text
    assert client.get(f"{base}&offset=-1").status_code == 400
    assert client.get("/audit?limit=many").status_code == 400


def test_admin_creates_a_local_user_and_resets_mfa(
    client: TestClient, world: tuple[Archive, dict[str, str]]
) -> None:
    archive, studies = world
    sign_in(client, "adam")
    token = _csrf(client.get("/admin").text)
    form = {"csrf_token": token, "username": "nina", "password": PASSWORD,
            "grant": "reader@T2", "display_name": "Nina Reader"}  # fmt: skip
    assert client.post("/admin/users", data={**form, "csrf_token": ""}).status_code == 403
    weak = client.post("/admin/users", data={**form, "password": "short"})
    assert weak.status_code == 400 and "at least" in weak.text
    typo = client.post("/admin/users", data={**form, "grant": "emperor@T2"})
    assert typo.status_code == 400 and "unknown role" in typo.text
    made = client.post("/admin/users", data=form)
    assert made.status_code == 200 and "nina" in made.text and "reader@T2" in made.text
    again = client.post("/admin/users", data=form)
    assert again.status_code == 400 and "exists already" in again.text
    trail = {(e["action"], e["actor"]) for e in query(archive.db, Filter(object="nina"))}
    assert {("auth.user.add", "adam"), ("auth.role.grant", "adam")} <= trail
    # the password is a temporary one: no session until nina chose her own
    client.cookies.clear()
    login = {"csrf_token": _csrf(client.get("/login").text), "username": "nina",
             "password": PASSWORD}  # fmt: skip
    asked = client.post("/login", data=login)
    assert asked.status_code == 401 and 'name="new_password"' in asked.text
    assert "tp_session" not in asked.headers.get("set-cookie", "")
    same = client.post("/login", data={**login, "new_password": PASSWORD})
    assert same.status_code == 400 and "differ" in same.text
    weak = client.post("/login", data={**login, "new_password": "short"})
    assert weak.status_code == 400 and "at least" in weak.text
    chosen = client.post("/login", data={**login, "new_password": NEW_PASSWORD},
                         follow_redirects=False)  # fmt: skip
    assert chosen.status_code == 303 and "tp_session" in chosen.headers["set-cookie"]
    assert ("auth.user.password", "nina") in {
        (e["action"], e["actor"]) for e in query(archive.db, Filter(object="nina"))
    }
    client.cookies.clear()
    login["csrf_token"] = _csrf(client.get("/login").text)
    assert client.post("/login", data=login).status_code == 401  # the temporary one is gone
    sign_in(client, "nina", password=NEW_PASSWORD)
    assert studies["T2"] in client.get("/worklist").text
    account = client.get("/account")
    r = client.post("/account/mfa", data={"csrf_token": _csrf(account.text)})
    secret = re.search(r'id="mfa-secret">([A-Z2-7]+)<', r.text)
    assert secret
    code = pyotp.TOTP(secret.group(1)).now()
    client.post("/account/mfa/confirm", data={"csrf_token": _csrf(r.text), "code": code})
    # she loses her phone: the administrator resets the factor, she signs in without one
    client.cookies.clear()
    sign_in(client, "adam")
    token = _csrf(client.get("/admin").text)
    unknown = client.post("/admin/mfa", data={"csrf_token": token, "username": "nobody"})
    assert unknown.status_code == 400
    reset = client.post("/admin/mfa", data={"csrf_token": token, "username": "nina"})
    assert reset.status_code == 200 and "Done." in reset.text
    trail = {(e["action"], e["actor"]) for e in query(archive.db, Filter(object="nina"))}
    assert ("auth.user.reset_mfa", "adam") in trail
    client.cookies.clear()
    sign_in(client, "nina", password=NEW_PASSWORD)
    # not an administrator: the forms do not exist
    token = _csrf(client.get("/worklist").text)
    assert client.post("/admin/users", data={**form, "csrf_token": token}).status_code == 404
    refused = client.post("/admin/mfa", data={"csrf_token": token, "username": "rita"})
    assert refused.status_code == 404


def test_a_trial_may_keep_reader_reports_in_its_archive(
    client: TestClient, world: tuple[Archive, dict[str, str]]
) -> None:
    from support.portal_matrix import report_body

    archive, studies = world
    config = CONFIG.format(tmp=archive.settings.data_dir)
    trial_wide = config.replace(
        "{id: T2, name: Trial two,", "{id: T2, name: Trial two, reader_reports: trial,"
    )
    assert trial_wide != config
    users.add_user(archive.db, "tess", password=PASSWORD)
    users.grant(archive.db, "tess", "reader@T2")
    users.add_user(archive.db, "tom", password=PASSWORD)
    users.grant(archive.db, "tom", "reader@T2")
    apply(archive, load_text(trial_wide))
    try:
        assert {t.id: t.reader_reports for t in current(archive).trials} == {
            "T1": "workspace", "T2": "trial"}  # fmt: skip
        sign_in(client, "tess")
        headers = {"Origin": "http://testserver"}
        body, ctype = report_body(studies["T2"])
        r = client.post("/api/measurements", content=body,
                        headers={**headers, "Content-Type": ctype})  # fmt: skip
        assert r.status_code == 200, r.text
        sop = r.json()["00081199"]["Value"][0]["00081155"]["Value"][0]
        assert f"{sop}.dcm" not in client.get("/workspace").text
        # a report about a study tess may not read is missing, wherever it would go
        other, _ = report_body(studies["T1"])
        refused = client.post("/api/measurements", content=other,
                              headers={**headers, "Content-Type": ctype})  # fmt: skip
        assert refused.status_code == 404
        # another reader of the trial finds it as a new SR series of the study
        client.cookies.clear()
        sign_in(client, "tom")
        series = client.get(f"/dicomweb/studies/{studies['T2']}/series")
        assert series.status_code == 200
        assert "SR" in {s["00080060"]["Value"][0] for s in series.json()}
        # T1 keeps the default: rita's report stays in her workspace
        client.cookies.clear()
        sign_in(client, "rita")
        mine, ctype1 = report_body(studies["T1"])
        kept = client.post("/api/measurements", content=mine,
                           headers={**headers, "Content-Type": ctype1})  # fmt: skip
        assert kept.status_code == 200
        kept_sop = kept.json()["00081199"]["Value"][0]["00081155"]["Value"][0]
        assert f"{kept_sop}.dcm" in client.get("/workspace").text
        hidden = client.get(f"/dicomweb/studies/{studies['T2']}/series")
        assert hidden.status_code != 200 or not hidden.content or hidden.json() == []
        stored = query(archive.db, Filter(user="tess", action="reader_report.store"))
        assert stored and stored[-1]["sop"] == sop and stored[-1]["trial"] == "T2"
    finally:
        apply(archive, load_text(config))


def test_viewer_reports_are_re_encoded_for_the_archive(
    world: tuple[Archive, dict[str, str]],
) -> None:
    """OHIF writes implicit VR with undefined-length sequences; the archive gets explicit VR."""
    import io

    from pydicom import dcmread
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ImplicitVRLittleEndian

    from trialpacs.portal.measurements import archive_encoding

    ds = dcmread(io.BytesIO(make_bytes(rows=1, cols=1)))
    del ds.PixelData
    item = Dataset()
    item.ValueType = "TEXT"
    item.TextValue = "length 12 mm"
    ds.ContentSequence = Sequence([item])
    ds.ContentSequence.is_undefined_length = True  # type: ignore[attr-defined]
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    raw = io.BytesIO()
    ds.save_as(raw, enforce_file_format=True, implicit_vr=True, little_endian=True)
    out = dcmread(io.BytesIO(archive_encoding(raw.getvalue())))
    assert out.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert out.ContentSequence[0].TextValue == "length 12 mm"
    # the strict ingest path takes it
    where = Placement(collection="published", trial_id="T1", site_id="S1")
    (stored,) = store_many(world[0], [archive_encoding(raw.getvalue())], placement=where)
    assert isinstance(stored, StoreOutcome), stored


def test_audit_export_holds_the_whole_matching_trail(
    client: TestClient, world: tuple[Archive, dict[str, str]]
) -> None:
    """A monitor's export is evidence: every matching entry, oldest first, not the newest 500."""
    archive = world[0]
    events = [
        AuditEvent(action="test.bulk", actor="bulk", trial="T1", object=f"n{i}")
        for i in range(2300)
    ]
    with archive.db.write() as session:
        append_many(session, events)
    sign_in(client, "mona")
    rows = client.get("/audit/export?format=json&action=test.bulk").json()
    assert [r["object"] for r in rows] == [f"n{i}" for i in range(2300)]
    lines = client.get("/audit/export?format=csv&action=test.bulk").text.strip().splitlines()
    assert len(lines) == 1 + 2300
