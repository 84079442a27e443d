"""OHIF in headless Chromium against a live server: the images really render."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from support.services import LiveServer, live_server

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("TRIALPACS_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(
    os.environ.get("TRIALPACS_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts")
)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, testdata: Path) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("viewer")) as srv:
        boundary = "b0undary"
        body = b""
        for path in sorted((testdata / "mr-brain-series").glob("*.dcm")):
            body += f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
            body += path.read_bytes() + b"\r\n"
        body += f"--{boundary}--\r\n".encode()
        r = httpx.post(
            srv.dicomweb + "/studies",
            content=body,
            headers={
                **srv.headers(),
                "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            },
            timeout=60,
        )
        assert r.status_code == 200, r.text
        yield srv


def test_viewer_is_served_with_isolation_headers(server: LiveServer) -> None:
    r = httpx.get(server.url + "/viewer/")
    assert r.status_code == 200
    assert r.headers["cross-origin-opener-policy"] == "same-origin"
    assert r.headers["cross-origin-embedder-policy"] == "require-corp"
    assert 'src="/viewer/app-config.js"' in r.text
    config = httpx.get(server.url + "/viewer/app-config.js")
    assert "qidoRoot" in config.text and "Bearer" in config.text
    from trialpacs.web.viewer import default_viewer_dir

    wasm = next(default_viewer_dir().glob("*.wasm")).name
    r = httpx.get(f"{server.url}/viewer/{wasm}")
    assert r.headers["content-type"] == "application/wasm"
    assert httpx.get(server.url + "/viewer/no-such-file.js").status_code == 404


def test_study_opens_and_renders_pixels(server: LiveServer, testdata: Path) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    study = "0.0.0.0.2.8811.20010413115754.12432"
    outside: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on(
            "request",
            lambda req: (
                outside.append(req.url)
                if not req.url.startswith((server.url, "data:", "blob:"))
                else None
            ),
        )
        page.goto(f"{server.url}/viewer/?#token={server.token}")
        page.wait_for_selector("text=BRAIN", timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "viewer-study-list.png"))
        page.goto(f"{server.url}/viewer/viewer?StudyInstanceUIDs={study}")
        canvas = page.wait_for_selector("canvas", timeout=60_000)
        assert canvas is not None
        page.wait_for_timeout(4000)
        shot = page.screenshot(path=str(ARTIFACTS / "viewer-study.png"))
        box = canvas.bounding_box()
        browser.close()
    assert box is not None and box["width"] > 100
    image = np.asarray(Image.open(io.BytesIO(shot)).convert("L"))
    region = image[
        int(box["y"]) : int(box["y"] + box["height"]), int(box["x"]) : int(box["x"] + box["width"])
    ]
    assert region.std() > 10, "the viewport is blank"
    assert (region > 60).mean() > 0.05, "too few bright pixels: the image did not render"
    assert outside == [], f"the viewer reached outside the server: {outside[:5]}"
