"""Shared fixtures.

Real test images come from one setting, ``TRIALPACS_TESTDATA`` (default
``../shared/testdata`` next to the repository). They are never copied into
the repo, and a missing directory fails the run instead of skipping tests.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def testdata_root() -> Path:
    return Path(os.environ.get("TRIALPACS_TESTDATA", REPO.parent / "shared" / "testdata")).resolve()


@pytest.fixture(scope="session")
def testdata() -> Path:
    """The real DICOM corpus; fails loudly when it is missing."""
    root = testdata_root()
    if not (root / "index.csv").is_file():
        pytest.fail(
            f"test images not found at {root}: set TRIALPACS_TESTDATA to the shared testdata folder"
        )
    return root


@pytest.fixture(scope="session")
def testdata_files(testdata: Path) -> list[Path]:
    return sorted(testdata.glob("*/*.dcm"))
