"""Domain events reach the trail: stores (with the caller), configuration apply
(old/new values), permission changes, and re-identification through the key vault."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from dicomfactory import make_bytes
from trialpacs.access import users
from trialpacs.access.apikeys import create_key
from trialpacs.archive import Archive
from trialpacs.audit import verify
from trialpacs.audit.chain import AuditEvent, Filter, query
from trialpacs.cli.main import app as cli_app
from trialpacs.config import apply, load_text
from trialpacs.deid.vault import KeyVault
from trialpacs.ingest.store import store_many
from trialpacs.settings import load_settings
from trialpacs.web.app import create_app

CONFIG = """\
version: 1
sites:
  - {id: S1, name: One, region: local}
profiles:
  - name: basic
    extends: trial
trials:
  - id: T1
    name: Trial one
    profile: basic
    deid_regions: [local]
    sites: [{site: S1}]
"""


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    arch = Archive.open(load_settings(None, data_dir=tmp_path))
    yield arch
    arch.close()


def test_store_names_caller_study_and_commits_with_the_instances(archive: Archive) -> None:
    a, b = make_bytes(), make_bytes()
    c = make_bytes()
    template = AuditEvent(action="store.import", actor="os:tester", agent="cli")
    store_many(archive, [a, b], audit=template)
    store_many(archive, [c])  # no template: still an entry, without an actor
    entries = query(archive.db, Filter(action="store*"))
    assert [(e["action"], e["actor"]) for e in entries] == [
        ("store.import", "os:tester"),
        ("store.import", "os:tester"),
        ("store", ""),
    ]
    assert all(e["study"] and '"instances":1' in e["detail"] for e in entries)
    assert verify(archive.db).ok


def test_stow_entry_names_the_signed_in_caller(archive: Archive) -> None:
    key = create_key(archive.db, "uploader")
    client = TestClient(create_app(archive), headers={"Authorization": f"Bearer {key}"})
    data = make_bytes()
    boundary = "XbX"
    body = (
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    r = client.post(
        "/dicomweb/studies",
        content=body,
        headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'
        },
    )
    assert r.status_code == 200, r.text
    (entry,) = query(archive.db, Filter(action="store.stow-rs"))
    assert entry["actor"] == "uploader" and entry["roles"] == "administrator"
    assert entry["address"] and entry["study"]


def test_config_apply_records_old_and_new_values(archive: Archive) -> None:
    apply(archive, load_text(CONFIG), "trials.yaml", actor="os:admin")
    created = query(archive.db, Filter(action="config.create", trial="T1"))
    assert len(created) == 1 and '"name": "Trial one"' in created[0]["new_value"]
    assert created[0]["actor"] == "os:admin" and created[0]["reason"] == "applied from trials.yaml"
    apply(archive, load_text(CONFIG.replace("Trial one", "Trial 1")), "trials.yaml")
    (updated,) = query(archive.db, Filter(action="config.update"))
    assert updated["old_value"] == '{"name": "Trial one"}'
    assert updated["new_value"] == '{"name": "Trial 1"}'
    assert updated["object"] == "trial:T1"
    before = len(query(archive.db, Filter(action="config.*")))
    apply(archive, load_text(CONFIG.replace("Trial one", "Trial 1")), "trials.yaml")
    assert len(query(archive.db, Filter(action="config.*"))) == before  # nothing changed


def test_permission_changes_carry_old_and_new_values(archive: Archive) -> None:
    users.add_user(archive.db, "bob", password="correct-horse-battery-7", actor="admin")
    users.grant(archive.db, "bob", "reader@T1", actor="admin")
    users.revoke(archive.db, "bob", "reader@T1", actor="admin")
    users.set_disabled(archive.db, "bob", actor="admin")
    got = {
        e["action"]: (e["old_value"], e["new_value"], e["actor"])
        for e in query(archive.db, Filter(action="auth.*"))
    }
    assert got["auth.role.grant"] == ("", "reader@T1", "admin")
    assert got["auth.role.revoke"] == ("reader@T1", "", "admin")
    assert got["auth.user.disable"] == ("enabled", "disabled", "admin")


def test_reidentification_is_audited_before_anything_is_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "site"
    data.mkdir()
    monkeypatch.setenv("TRIALPACS_DATA_DIR", str(data))
    secret = b"s" * 32
    (data / "deid-secret").write_bytes(secret)
    with KeyVault(data / "deid-vault.sqlite", secret) as kv:
        sid = kv.subject_id("T1|S1", b"patient-1", {"PatientID": "MRN777"}, lambda n: f"S1-{n:04d}")
    runner = CliRunner()
    r = runner.invoke(cli_app, ["deid", "lookup", sid, "--who", "dr.m", "--reason", "SAE"])
    assert r.exit_code == 0, r.output
    assert "MRN777" in r.output
    r = runner.invoke(cli_app, ["deid", "lookup", "S1-9999", "--who", "dr.m", "--reason", "typo"])
    assert r.exit_code == 1
    arch = Archive.open(load_settings(None, data_dir=data))
    try:
        entries = query(arch.db, Filter(action="deid.reidentify"))
    finally:
        arch.close()
    assert [(e["actor"], e["object"], e["reason"], e["outcome"]) for e in entries] == [
        ("dr.m", f"pseudonym={sid}", "SAE", "success"),
        ("dr.m", "pseudonym=S1-9999", "typo", "failure"),
    ]
