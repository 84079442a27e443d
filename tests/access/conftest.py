"""Fixtures: an archive on SQLite + files with an app client, and users to sign in."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from access._helpers import PASSWORD
from trialpacs.access import users
from trialpacs.archive import Archive
from trialpacs.settings import load_settings
from trialpacs.web.app import create_app


def open_archive(tmp_path: Path, **overrides: Any) -> Archive:
    return Archive.open(load_settings(None, data_dir=tmp_path, **overrides))


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    arc = open_archive(tmp_path, lockout_threshold=3, lockout_minutes=15)
    yield arc
    arc.close()


@pytest.fixture
def client(archive: Archive) -> Iterator[TestClient]:
    with TestClient(create_app(archive)) as c:
        yield c


@pytest.fixture
def alice(archive: Archive) -> str:
    users.add_user(archive.db, "alice", password=PASSWORD)
    users.grant(archive.db, "alice", "reader@T1")
    return "alice"


os.environ.setdefault("TRIALPACS_DICOM_PORT", "0")
