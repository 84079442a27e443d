"""Regenerate the README's screenshots of the portal: worklist, viewer, QC queue.

    .venv/bin/python scripts/screenshots.py [--testdata DIR] [--out docs/screenshots]

Builds a throwaway installation (one trial whose baseline visit expects a
brain, a reader, a data manager and a site coordinator), publishes the
shared test corpus's MR brain series, uploads a knee MR for the brain visit
through the site's STOW-RS route so the anatomy QC holds it, starts
``trialpacs serve`` and photographs the pages with Debian's chromium. PNGs are
reduced to a palette so each stays small.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from PIL import Image
from playwright.sync_api import Page, sync_playwright

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "Screenshot-pass-phrase-5"
CONFIG = """\
version: 1
regions: [{{id: eu}}]
storage_backends:
  - {{name: q-eu, kind: local, path: {tmp}/q-eu, region: eu, purpose: identified}}
profiles: [{{name: basic, extends: trial}}]
sites:
  - {{id: BER01, name: Berlin, region: eu, identified_backend: q-eu}}
trials:
  - id: NEURO-3
    name: Neuro imaging three
    sponsor: Example Pharma
    profile: basic
    deid_regions: [local, eu]
    timepoints:
      - {{id: BL, description: Baseline, modalities: [MR], anatomy: [brain]}}
    sites: [{{site: BER01}}]
"""
USERS = {"reader": "reader@NEURO-3", "dm": "data_manager@NEURO-3",
         "coordinator": "site_coordinator@NEURO-3/BER01"}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _prepare(data: Path, testdata: Path) -> None:
    from trialpacs.access import users
    from trialpacs.archive import Archive
    from trialpacs.config import apply, load_text
    from trialpacs.ingest.store import Placement, store_many
    from trialpacs.settings import load_settings

    archive = Archive.open(load_settings(None, data_dir=data, cookie_secure=False))
    try:
        apply(archive, load_text(CONFIG.format(tmp=data)))
        brain = [p.read_bytes() for p in sorted((testdata / "mr-brain-series").glob("*.dcm"))]
        store_many(archive, brain, placement=Placement("published", "NEURO-3", "BER01"))
        for name, grant in USERS.items():
            users.add_user(archive.db, name, password=PASSWORD)
            users.grant(archive.db, name, grant)
    finally:
        archive.close()


def _upload(url: str, path: Path) -> None:
    """The coordinator's upload of a knee series for the brain visit (QC holds it)."""
    with httpx.Client(base_url=url) as client:
        client.post("/auth/login", json={"username": "coordinator", "password": PASSWORD,
                                         "session": "cookie"}).raise_for_status()  # fmt: skip
        boundary = "screenshots"
        body = (
            f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
            + path.read_bytes()
            + f"\r\n--{boundary}--\r\n".encode()
        )
        r = client.post(
            "/dicomweb/trials/NEURO-3/sites/BER01/studies?timepoint=BL",
            content=body,
            headers={"Content-Type": f'multipart/related; type="application/dicom"; '
                     f"boundary={boundary}", "Origin": url},
        )  # fmt: skip
        r.raise_for_status()


def _save(page: Page, out: Path, width: int = 1200) -> None:
    image = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
    if image.width > width:
        image = image.resize((width, round(image.height * width / image.width)), Image.Resampling.LANCZOS)
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    print(f"{out.relative_to(REPO) if out.is_relative_to(REPO) else out}: "
          f"{out.stat().st_size // 1024} KB")  # fmt: skip


def _sign_in(page: Page, url: str, username: str) -> None:
    page.goto(url + "/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("#sign-in")
    page.wait_for_url("**/worklist")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_testdata = os.environ.get("TRIALPACS_TESTDATA", REPO.parent / "shared" / "testdata")
    parser.add_argument("--testdata", type=Path, default=Path(default_testdata))
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    parser.add_argument(
        "--chromium", default=os.environ.get("TRIALPACS_CHROMIUM", "/usr/bin/chromium")
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="trialpacs-shots-") as tmp:
        data = Path(tmp)
        _prepare(data, args.testdata)
        port = _free_port()
        env = {**os.environ, "TRIALPACS_DATA_DIR": str(data), "TRIALPACS_DICOM_PORT": "0",
               "TRIALPACS_COOKIE_SECURE": "false", "TRIALPACS_SERIES_SETTLE_SECONDS": "1",
               "TRIALPACS_DEID_SECRET": "screenshots"}  # fmt: skip
        server = subprocess.Popen(
            [sys.executable, "-m", "trialpacs.cli.main", "serve", "--http-port", str(port),
             "--log-level", "warning"], env=env,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    httpx.get(url + "/health", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            _upload(url, args.testdata / "mr-knee" / "MR3_UNC.dcm")
            _shoot(url, args)
        finally:
            server.terminate()
            server.wait(15)


def _shoot(url: str, args: argparse.Namespace) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])  # fmt: skip
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        _sign_in(page, url, "dm")
        page.wait_for_function(
            "() => [...document.querySelectorAll('td.thumb img')]"
            ".every(i => i.complete && i.naturalWidth > 0)"
        )
        _save(page, args.out / "worklist.png")
        deadline = time.monotonic() + 120
        page.goto(url + "/qc")
        while page.locator("#qc-queue tr[data-series]").count() == 0:
            if time.monotonic() > deadline:
                print("nothing was held for QC; the QC screenshot shows an empty queue")
                break
            page.wait_for_timeout(2000)
            page.goto(url + "/qc")
        page.wait_for_timeout(1000)
        _save(page, args.out / "qc-queue.png")
        page.goto(url + "/worklist")
        page.locator("a.open-viewer").first.click()
        page.wait_for_selector("canvas", timeout=60_000)
        page.wait_for_timeout(5000)
        _save(page, args.out / "viewer.png")
        browser.close()


if __name__ == "__main__":
    main()
