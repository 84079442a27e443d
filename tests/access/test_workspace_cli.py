"""Workspaces (persistence, quota, isolation) and the access CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from access._helpers import PASSWORD, bearer, login
from trialpacs.archive import Archive
from trialpacs.web.app import create_app

from .conftest import open_archive


def test_workspace_persists_across_sessions_with_quota(tmp_path: Path) -> None:
    archive = open_archive(tmp_path, workspace_quota_bytes=1000)
    from trialpacs.access import users

    users.add_user(archive.db, "alice", password=PASSWORD)
    users.add_user(archive.db, "bob", password=PASSWORD)
    with TestClient(create_app(archive)) as client:
        a = bearer(login(client, "alice").json()["access_token"])
        r = client.put("/workspace/files/notes.txt", content=b"x" * 600, headers=a)
        assert r.status_code == 201 and r.json()["size"] == 600
        assert (
            client.put("/workspace/settings", content=b'{"layout": "1x2"}', headers=a).status_code
            == 201
        )
        assert client.put("/workspace/annotations/a1", content=b"{}", headers=a).status_code == 201
        over = client.put("/workspace/files/big.bin", content=b"y" * 400, headers=a)
        assert over.status_code == 413 and "quota" in over.json()["detail"]
        # replacing a file counts only the difference
        assert (
            client.put("/workspace/files/notes.txt", content=b"z" * 900, headers=a).status_code
            == 201
        )
        # Encoded, so the client cannot fold "/files/.." into "/workspace" first.
        bad = client.put("/workspace/files/%2E%2E", content=b"", headers=a)
        assert bad.status_code in (400, 404)
        b = bearer(login(client, "bob").json()["access_token"])
        assert client.get("/workspace/files", headers=b).json() == []
        assert client.get("/workspace/files/notes.txt", headers=b).status_code == 404
        assert client.delete("/admin/users/alice/workspace", headers=b).status_code == 404
    archive.close()
    # a new process, a new sign-in: the workspace is still there
    archive = Archive.open(archive.settings)
    with TestClient(create_app(archive)) as client:
        a = bearer(login(client, "alice").json()["access_token"])
        files = client.get("/workspace/files", headers=a).json()
        assert [f["name"] for f in files] == ["notes.txt"] and files[0]["size"] == 900
        assert client.get("/workspace/settings", headers=a).json() == {"layout": "1x2"}
        assert client.get("/workspace/usage", headers=a).json()["used_bytes"] == 900 + 17 + 2
        assert client.delete("/workspace/files/notes.txt", headers=a).status_code == 204
        assert client.get("/workspace/files/notes.txt", headers=a).status_code == 404
    keys = [k for k in archive.store.keys("workspaces/") if "/file/" in k]
    assert keys == []  # the blob went with the row
    archive.close()


def _cli(tmp: Path, *args: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRIALPACS_DICOM_PORT": "0"}
    if password:
        env["TRIALPACS_NEW_PASSWORD"] = password
    return subprocess.run(
        [sys.executable, "-m", "trialpacs.cli.main", *args, "--data-dir", str(tmp)],
        env=env,
        capture_output=True,
        text=True,
    )


@pytest.mark.slow
def test_cli_user_role_and_token(tmp_path: Path) -> None:
    assert (
        _cli(tmp_path, "user", "add", "carol", "--role", "reader@T1", password=PASSWORD).returncode
        == 0
    )
    weak = _cli(tmp_path, "user", "add", "dan", password="short")
    assert weak.returncode == 2 and "at least 12" in weak.stderr
    assert _cli(tmp_path, "role", "grant", "carol", "data_manager@T2").returncode == 0
    assert _cli(tmp_path, "role", "grant", "carol", "site_coordinator@T1").returncode == 2
    assert _cli(tmp_path, "role", "revoke", "carol", "reader@T1").returncode == 0
    listing = _cli(tmp_path, "user", "list")
    assert "carol" in listing.stdout and "data_manager@T2" in listing.stdout
    assert _cli(tmp_path, "user", "reset-mfa", "carol").returncode == 0
    assert _cli(tmp_path, "user", "disable", "carol").returncode == 0
    assert "disabled" in _cli(tmp_path, "user", "list").stdout
    key = _cli(tmp_path, "token", "create", "--name", "pacs-s1", "--role", "site_pacs@T1/S1")
    assert key.returncode == 0 and key.stdout.strip().startswith("tp_")
    archive = open_archive(tmp_path)
    with TestClient(create_app(archive)) as client:
        me = client.get("/auth/me", headers=bearer(key.stdout.strip())).json()
        assert me["roles"] == ["site_pacs@T1/S1"] and me["scopes"] == ["dicomweb"]
        assert login(client, "carol").status_code == 401  # disabled
    archive.close()
