"""The package as the container image installs it: a built wheel, not this checkout.

The Dockerfile's build stage runs ``pip install .``, which ships only what
``[tool.setuptools.package-data]`` names. A template, migration, profile or
data file left out works in the editable development install and fails in the
image. These tests build the wheel, check that it holds every file of the
source package, and start the demo server from the wheel alone.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.services import free_port, wait_http

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "src" / "trialpacs"

pytestmark = pytest.mark.slow


def source_files() -> set[str]:
    return {
        f"trialpacs/{p.relative_to(PACKAGE).as_posix()}"
        for p in PACKAGE.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build from a copy so the checkout gets no build/ or egg-info litter."""
    work = tmp_path_factory.mktemp("pkg")
    tree = work / "tree"
    (tree / "src").mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, tree / name)
    shutil.copytree(
        PACKAGE,
        tree / "src" / "trialpacs",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    out = work / "dist"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(out),
            str(tree),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, f"wheel build failed:\n{build.stdout}\n{build.stderr}"
    (built,) = out.glob("trialpacs-*.whl")
    return built


def test_wheel_holds_every_file_of_the_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = zf.read(
            next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        ).decode()
    missing = sorted(source_files() - names)
    assert not missing, (
        "files of src/trialpacs that the wheel (and so the container image) lacks; "
        f"add them to [tool.setuptools.package-data]: {missing}"
    )
    assert re.search(r"^trialpacs\s*=\s*trialpacs\.cli\.main:main$", entry_points, re.M)


@pytest.fixture
def installed(wheel: Path, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The wheel unpacked into its own directory, first on the path; dependencies from .venv."""
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(site),
        "TRIALPACS_DATA_DIR": str(tmp_path / "data"),
        "TRIALPACS_DATABASE_URL": "",
        "TRIALPACS_SERIES_SETTLE_SECONDS": "1",
        "NO_COLOR": "1",
        "COLUMNS": "400",
    }
    env.pop("TRIALPACS_CONFIG", None)
    where = subprocess.run(
        [sys.executable, "-c", "import trialpacs; print(trialpacs.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout.strip()
    assert where.startswith(str(site)), f"trialpacs imported from {where}, not the wheel"
    yield env


def test_demo_server_runs_from_the_wheel(installed: dict[str, str], tmp_path: Path) -> None:
    """Migrations, demo trial, de-identification profiles, templates and static files."""
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "trialpacs.cli.main",
                "serve",
                "--demo",
                "--http-port",
                str(port),
                "--dicom-port",
                "0",
                "--log-level",
                "warning",
            ],
            env=installed,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/health", timeout=180, proc=proc)
        deadline = time.monotonic() + 60
        token = None
        while token is None and time.monotonic() < deadline:
            found = re.search(r"Token: (\S+)", log.read_text(errors="replace"))
            token = found.group(1) if found else None
            time.sleep(0.2)
        assert token, f"no demo token printed:\n{log.read_text(errors='replace')[-3000:]}"
        with httpx.Client(base_url=base, timeout=30) as client:
            auth = {"Authorization": f"Bearer {token}"}
            published: list[object] = []
            deadline = time.monotonic() + 180
            while not published and time.monotonic() < deadline:
                studies = client.get("/dicomweb/studies", headers=auth)
                assert studies.status_code == 200, studies.text
                published = studies.json()
                time.sleep(0.5)
            assert published, "the pipeline run from the wheel published no demo study"
            login = client.get("/login")
            assert login.status_code == 200 and "<form" in login.text
            css = client.get("/static/portal.css")
            assert css.status_code == 200 and len(css.content) > 100
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
