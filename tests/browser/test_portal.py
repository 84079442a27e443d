"""The portal in headless Chromium against a live server, as each role uses it.

One server for the module; the tests run in order (sign-in and viewer,
isolation between trials, upload as a site coordinator, the audit view of a
monitor) and leave a screenshot of every page under ``test-artifacts/portal``.
"""

from __future__ import annotations

import io
import os
import shutil
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, sync_playwright

from support.services import LiveServer, live_server
from trialpacs.access import users
from trialpacs.access.policy import Grant, Principal
from trialpacs.archive import Archive
from trialpacs.config import apply, load_text
from trialpacs.ingest.store import Placement, StoreOutcome, store_many
from trialpacs.reads.assignments import assign
from trialpacs.settings import load_settings

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("TRIALPACS_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = (
    Path(
        os.environ.get(
            "TRIALPACS_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"
        )
    )
    / "portal"
)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]  # fmt: skip
PASSWORD = "Browser-portal-pass-71"
BRAIN = "0.0.0.0.2.8811.20010413115754.12432"  # mr-brain-series, published in trial TA
CONFIG = """\
version: 1
regions: [{{id: eu}}]
storage_backends:
  - {{name: q-eu, kind: local, path: {tmp}/q-eu, region: eu, purpose: identified}}
profiles: [{{name: basic, extends: trial}}]
sites:
  - {{id: S1, name: Site one, region: eu, identified_backend: q-eu}}
trials:
  - id: TA
    name: Trial A
    profile: basic
    deid_regions: [local, eu]
    timepoints: [{{id: BL, description: Baseline}}]
    sites: [{{site: S1}}]
  - id: TQ
    name: Trial Q
    profile: basic
    deid_regions: [local, eu]
    timepoints: [{{id: BL, description: Baseline, modalities: [MR], anatomy: [brain]}}]
    sites: [{{site: S1}}]
  - id: TB
    name: Trial B
    profile: basic
    deid_regions: [local, eu]
    sites: [{{site: S1}}]
"""
USERS = {
    "rhea": ["reader@TA"],
    "cole": ["site_coordinator@TA/S1", "site_coordinator@TQ/S1"],
    "dora": ["data_manager@TA", "data_manager@TQ"],
    "moe": ["monitor@TA", "monitor@TQ"],
    "ada": ["administrator"],
}


@dataclass
class Portal:
    server: LiveServer
    browser: Browser
    other_study: str  # published in trial TB

    def page(self) -> Page:
        context = self.browser.new_context(viewport={"width": 1280, "height": 860})
        page = context.new_page()
        page.on("console", _csp_guard)
        return page


CSP_ERRORS: list[str] = []


def _csp_guard(message: object) -> None:
    text = getattr(message, "text", "")
    if "Content Security Policy" in text:
        CSP_ERRORS.append(text)


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory, testdata: Path) -> Iterator[Portal]:
    tmp = tmp_path_factory.mktemp("portal-browser")
    archive = Archive.open(load_settings(None, data_dir=tmp, cookie_secure=False))
    apply(archive, load_text(CONFIG.format(tmp=tmp)))
    brain = [p.read_bytes() for p in sorted((testdata / "mr-brain-series").glob("*.dcm"))]
    for out in store_many(archive, brain, placement=Placement("published", "TA", "S1")):
        assert isinstance(out, StoreOutcome), out
    (ct,) = store_many(
        archive, [(testdata / "ct" / "CT1_UNC.dcm").read_bytes()],
        placement=Placement("published", "TB", "S1"),
    )  # fmt: skip
    assert isinstance(ct, StoreOutcome), ct
    for name, grants in USERS.items():
        users.add_user(archive.db, name, password=PASSWORD)
        for grant in grants:
            users.grant(archive.db, name, grant)
    assign(archive, Principal("dora", grants=(Grant("data_manager", "TA"),)), trial="TA",
           study=BRAIN, reader="rhea")  # fmt: skip
    archive.close()
    env = {
        "TRIALPACS_COOKIE_SECURE": "false",
        "TRIALPACS_SERIES_SETTLE_SECONDS": "1",
        "TRIALPACS_JOB_BACKOFF_SECONDS": "0.5",
        "TRIALPACS_DEID_SECRET": "portal-browser-secret",
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    print(f"\nportal screenshots: {ARTIFACTS}")
    with live_server(tmp, env) as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield Portal(server, browser, "1.3.6.1.4.1.5962.1.2.1.20040826185059.5457")
        finally:
            browser.close()
    assert CSP_ERRORS == [], CSP_ERRORS[:3]


def shot(page: Page, name: str) -> bytes:
    return page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=False)


def sign_in(portal: Portal, page: Page, username: str) -> None:
    page.goto(portal.server.url + "/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("#sign-in")
    page.wait_for_url("**/worklist")


def canvas_pixels(page: Page, name: str) -> np.ndarray:
    canvas = page.wait_for_selector("canvas", timeout=60_000)
    assert canvas is not None
    page.wait_for_timeout(4000)
    box = canvas.bounding_box()
    assert box is not None and box["width"] > 100
    image = np.asarray(Image.open(io.BytesIO(shot(page, name))).convert("L"))
    y, x = int(box["y"]), int(box["x"])
    return image[y : y + int(box["height"]), x : x + int(box["width"])]


def test_sign_in_worklist_viewer_sign_out(portal: Portal) -> None:
    page = portal.page()
    page.goto(portal.server.url + "/worklist")
    assert page.locator("form[action='/login']").is_visible()
    shot(page, "01-sign-in")
    sign_in(portal, page, "rhea")
    row = page.locator(f"tr[data-study='{BRAIN}']")
    row.wait_for()
    page.wait_for_function(
        "() => [...document.querySelectorAll('td.thumb img')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    shot(page, "02-worklist")
    row.locator("a.open-viewer").click()
    page.wait_for_url("**/viewer/viewer?StudyInstanceUIDs=*")
    region = canvas_pixels(page, "03-viewer")
    assert region.std() > 10, "the viewport is blank"
    assert (region > 60).mean() > 0.05, "too few bright pixels: the image did not render"
    assert "token=" not in page.url  # handed over in the fragment, then removed
    # a new tab has no token: the viewer gets one with the session cookie
    tab = page.context.new_page()
    tab.goto(f"{portal.server.url}/viewer/viewer?StudyInstanceUIDs={BRAIN}")
    assert canvas_pixels(tab, "03b-viewer-new-tab").std() > 10
    tab.close()
    page.goto(portal.server.url + "/worklist")
    page.click("#sign-out")
    page.wait_for_url("**/login")
    page.goto(portal.server.url + "/worklist")
    assert page.locator("form[action='/login']").is_visible()
    page.context.close()


def test_reader_saves_measurements_to_the_workspace(portal: Portal) -> None:
    page = portal.page()
    sign_in(portal, page, "rhea")
    page.locator(f"tr[data-study='{BRAIN}'] a.open-viewer").click()
    canvas = page.wait_for_selector("canvas", timeout=60_000)
    assert canvas is not None
    page.wait_for_timeout(3000)
    page.click("[data-cy=Length-btn]")
    box = canvas.bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x - 80, y)
    page.mouse.down()
    page.mouse.move(x, y + 30, steps=8)
    page.mouse.move(x + 80, y + 50, steps=8)
    page.mouse.up()
    page.get_by_role("button", name="Yes", exact=True).click()  # track measurements
    page.click("[data-cy=trackedMeasurements-btn]")
    page.get_by_role("button", name="Create SR").click()
    page.fill("[data-cy=dialog-input]", "Reader measurements")
    with page.expect_response("**/api/measurements") as saved:
        page.get_by_role("button", name="Save", exact=True).click()
    assert saved.value.status == 200, saved.value.text()
    sop = saved.value.json()["00081199"]["Value"][0]["00081155"]["Value"][0]
    shot(page, "03c-viewer-report-saved")
    page.goto(portal.server.url + "/workspace")
    assert f"{sop}.dcm" in page.inner_text("#annotations")
    shot(page, "03d-workspace")
    page.context.close()


def test_reader_signs_an_assigned_read(portal: Portal) -> None:
    page = portal.page()
    sign_in(portal, page, "rhea")
    page.click("a[href='/reads']")
    row = page.locator("#reads tr[data-read]")
    row.wait_for()
    assert BRAIN in row.inner_text() and "assigned" in row.inner_text()
    row.locator("textarea[name=findings]").fill("No abnormality.")
    row.locator("input[name=password]").fill(PASSWORD)
    shot(page, "03e-reads")
    row.locator("button[type=submit]").click()
    page.wait_for_selector("#reads-message:text('Read signed.')")
    page.wait_for_function(
        "() => document.querySelector('#reads tr[data-read]').textContent.includes('signed')"
    )
    page.context.close()


def test_reader_of_trial_a_cannot_reach_trial_b(portal: Portal) -> None:
    page = portal.page()
    sign_in(portal, page, "rhea")
    assert page.locator(f"tr[data-study='{BRAIN}']").count() == 1
    assert page.locator(f"tr[data-study='{portal.other_study}']").count() == 0
    page.select_option("select[name=trial]", "TA")
    page.wait_for_url("**/worklist?trial=TA*")
    options = page.locator("select[name=trial] option").all_inner_texts()
    assert "TB" not in options
    r = page.goto(f"{portal.server.url}/studies/{portal.other_study}")
    assert r is not None and r.status == 404
    shot(page, "04-other-trial-refused")
    # the viewer by URL: the token works, the other trial's study is simply not there
    token = page.evaluate(
        "() => fetch('/auth/session/token').then(r => r.json()).then(b => b.access_token)"
    )
    meta = page.request.get(
        f"{portal.server.dicomweb}/studies/{portal.other_study}/metadata",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/dicom+json"},
    )
    assert meta.status == 404
    page.goto(
        f"{portal.server.url}/viewer/viewer?StudyInstanceUIDs={portal.other_study}#token={token}"
    )
    page.wait_for_timeout(6000)
    shot(page, "05-other-trial-viewer")
    for canvas in page.locator("canvas").all():
        box = canvas.bounding_box()
        if box and box["width"] > 100:
            image = np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("L"))
            y, x = int(box["y"]), int(box["x"])
            region = image[y : y + int(box["height"]), x : x + int(box["width"])]
            assert region.std() < 5, "an image of the other trial was drawn"
    page.context.close()


def test_site_coordinator_uploads_a_folder_and_a_zip(portal: Portal, testdata: Path) -> None:
    folder = portal.server.data_dir.parent / "upload-folder"
    (folder / "series").mkdir(parents=True)
    shutil.copy(testdata / "mr-knee" / "MR3_UNC.dcm", folder / "series" / "knee.dcm")
    (folder / "series" / "notes.txt").write_text("not an image")
    archive_zip = folder.parent / "head.zip"
    with zipfile.ZipFile(archive_zip, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(testdata / "mr-head" / "MR1_UNC.dcm", "exam/head.dcm")
    page = portal.page()
    sign_in(portal, page, "cole")
    page.click("a[href='/upload']")
    page.wait_for_url("**/upload")
    page.select_option("#timepoint", "BL")
    page.set_input_files("#folder", str(folder / "series"))
    page.wait_for_selector("#summary[data-done]", timeout=60_000)
    summary = page.inner_text("#summary")
    assert "1 stored" in summary and "1 skipped" in summary, summary
    page.set_input_files("#files", str(archive_zip))
    page.wait_for_function(
        "() => document.querySelector('#summary').textContent.startsWith('Done: 1 stored')",
        timeout=60_000,
    )
    results = page.inner_text("#results")
    assert "head.zip/exam/head.dcm" in results and "stored" in results
    # the pipeline publishes both de-identified; the status table counts them
    page.wait_for_function(
        "() => Number((document.querySelector('.published-series') || {}).textContent) >= 1",
        timeout=120_000,
    )
    shot(page, "06-upload")
    page.context.close()
    # a data manager of the trial sees the published, de-identified studies
    page = portal.page()
    sign_in(portal, page, "dora")
    deadline = time.monotonic() + 120
    while True:
        page.goto(portal.server.url + "/worklist?trial=TA&status=published")
        text = page.inner_text("#worklist")
        if text.count("published") >= 3 or time.monotonic() > deadline:
            break
        page.wait_for_timeout(1000)
    assert text.count("published") >= 3, text  # the brain study and the two uploads
    for phi in ("CompressedSamples", "6MR3", "MR1"):
        assert phi not in page.content(), phi
    assert "S1-0001" in text and "S1-0002" in text  # subject pseudonyms, not the patients
    assert "BL" in text  # the visit chosen at upload
    page.fill("input[name=subject]", "S1-0001")
    page.press("input[name=subject]", "Enter")
    page.wait_for_function("() => document.querySelectorAll('#worklist tbody tr').length == 1")
    shot(page, "07-worklist-published")
    page.context.close()


def test_qc_approval_with_an_e_signature(portal: Portal, testdata: Path) -> None:
    shoulder = next((testdata / "mr-shoulder").glob("*.dcm"))
    page = portal.page()
    sign_in(portal, page, "cole")
    page.goto(portal.server.url + "/upload")
    page.select_option("#target", "TQ/S1")
    page.select_option("#timepoint", "BL")  # the brain visit: a shoulder is held for QC
    page.set_input_files("#files", str(shoulder))
    page.wait_for_selector("#summary[data-done]", timeout=60_000)
    assert page.inner_text("#summary").startswith("Done: 1 stored")
    page.context.close()
    page = portal.page()
    sign_in(portal, page, "dora")
    page.click("a[href='/qc']")
    deadline = time.monotonic() + 120
    while page.locator("#qc-queue tr[data-series]").count() == 0:
        assert time.monotonic() < deadline, "nothing was held for QC"
        page.wait_for_timeout(1000)
        page.reload()
    row = page.locator("#qc-queue tr[data-series]").first
    assert "expected Brain" in row.inner_text() and "S1-" in row.inner_text()
    page.wait_for_function(
        "() => [...document.querySelectorAll('#qc-queue img')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    shot(page, "08-qc-queue")
    row.locator("input[name=reason]").fill("shoulder acquired by mistake; accepted by the sponsor")
    row.locator("input[name=password]").fill("not-my-password")
    row.locator("button[type=submit]").click()
    page.wait_for_selector("#qc-message:text('Not signed')")
    row.locator("input[name=password]").fill(PASSWORD)
    row.locator("button[type=submit]").click()
    page.wait_for_selector("#qc-message:text('approved')")
    page.wait_for_selector("#qc-queue td.empty")
    shot(page, "09-qc-approved")
    deadline = time.monotonic() + 60
    while True:
        page.goto(portal.server.url + "/worklist?trial=TQ&status=published")
        if page.locator("#worklist tr[data-study]").count() or time.monotonic() > deadline:
            break
        page.wait_for_timeout(1000)
    assert page.locator("#worklist tr[data-study]").count() == 1
    page.context.close()


def test_monitor_sees_the_actions_just_taken(portal: Portal) -> None:
    page = portal.page()
    sign_in(portal, page, "moe")
    page.click("a[href='/audit']")
    page.wait_for_url("**/audit")
    page.fill("input[name=user]", "cole")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**/audit?user=cole*")
    rows = page.inner_text("#audit")
    assert "POST /dicomweb/trials/{trial}/sites/{site}/studies" in rows, rows[:500]
    page.click("#verify")
    page.wait_for_selector("#chain-state")
    assert page.inner_text("#chain-state").startswith("Intact")
    shot(page, "10-audit")
    page.goto(portal.server.url + "/audit?user=dora&action=qc.*")
    rows = page.inner_text("#audit")
    assert "qc.approve" in rows and "shoulder acquired by mistake" in rows, rows[:500]
    with page.expect_download() as download:
        page.click("a.export:text('CSV')")
    path = download.value.path()
    assert path is not None and "qc.approve" in Path(path).read_text()  # the filtered entries
    page.context.close()


def test_study_account_and_administration_pages(portal: Portal) -> None:
    page = portal.page()
    sign_in(portal, page, "ada")
    page.goto(f"{portal.server.url}/studies/{BRAIN}")
    page.wait_for_function(
        "() => [...document.querySelectorAll('ul.series img')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    assert page.locator("#open-viewer").is_visible()
    shot(page, "11-study")
    page.click("#whoami")
    page.click("#mfa-enrol")
    qr = page.wait_for_selector("img.qr")
    assert qr is not None and qr.evaluate("i => i.naturalWidth") > 100
    shot(page, "12-mfa-enrolment")
    page.goto(portal.server.url + "/admin")
    assert "Trial A" in page.inner_text("#admin-trials")
    assert "site_coordinator@TA/S1" in page.inner_text("#admin-users")
    shot(page, "13-admin")
    page.context.close()
