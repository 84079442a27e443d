"""Settings precedence, CORS, tokens and the db commands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from trialpacs.access.tokens import TokenVerifier, create_token, revoke_token
from trialpacs.archive import Archive
from trialpacs.settings import load_settings
from trialpacs.web.app import create_app


def test_env_beats_file_and_flags_beat_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "trialpacs.yaml"
    cfg.write_text("http-port: 9000\nae_title: FROMFILE\nmax_request_bytes: 1000\n")
    monkeypatch.setenv("TRIALPACS_AE_TITLE", "FROMENV")
    settings = load_settings(cfg, max_request_bytes=5)
    assert settings.http_port == 9000
    assert settings.ae_title == "FROMENV"
    assert settings.max_request_bytes == 5


def test_bad_config_file_names_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("- just\n- a list\n")
    with pytest.raises(SystemExit, match=r"bad\.yaml"):
        load_settings(cfg)


def test_cors_headers(tmp_path: Path) -> None:
    archive = Archive.open(
        load_settings(None, data_dir=tmp_path, cors_origins=["https://viewer.example"])
    )
    client = TestClient(create_app(archive))
    r = client.options(
        "/dicomweb/studies",
        headers={"Origin": "https://viewer.example", "Access-Control-Request-Method": "GET"},
    )
    assert r.headers["access-control-allow-origin"] == "https://viewer.example"
    r = client.options(
        "/dicomweb/studies",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in r.headers
    archive.close()


def test_tokens_are_hashed_and_revocable(tmp_path: Path) -> None:
    archive = Archive.open(load_settings(None, data_dir=tmp_path))
    secret = create_token(archive.db, "alice")
    raw = (tmp_path / "index.sqlite3").read_bytes()
    assert secret.encode() not in raw
    verifier = TokenVerifier(archive.db)
    identity = verifier.verify(secret)
    assert identity is not None and identity.name == "alice"
    assert revoke_token(archive.db, "alice") == 1
    assert TokenVerifier(archive.db).verify(secret) is None
    archive.close()


def test_cli_token_and_db(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "trialpacs.cli.main"]
    out = subprocess.run(
        [*cmd, "token", "create", "--name", "svc", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip().startswith("tp_")
    cur = subprocess.run(
        [*cmd, "db", "current", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert cur.stdout.strip() not in ("", "empty")
    helptext = subprocess.run([*cmd, "serve", "--help"], capture_output=True, text=True, check=True)
    assert "--dicom-port" in helptext.stdout and "--demo" in helptext.stdout
