"""Backup, wipe, restore: the audit chain, every blob's SHA-256 and QIDO answers survive.

Runs against the machine's PostgreSQL with the index, the published store,
the built-in quarantine and a named identified backend, a workspace file,
the pipeline secret and a key vault; the commands run as a user runs them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from pydicom.uid import generate_uid

from dicomfactory import make_bytes
from support.services import PG_ADMIN_URL, postgres_database, trialpacs_cmd
from trialpacs.access.apikeys import create_key
from trialpacs.access.policy import Principal
from trialpacs.access.workspace import Workspaces
from trialpacs.archive import Archive
from trialpacs.audit import verify
from trialpacs.audit.chain import query
from trialpacs.config import apply, load_text
from trialpacs.deid.vault import KeyVault
from trialpacs.ingest.store import Placement, StoreOutcome, store_many
from trialpacs.ops.backup import backends
from trialpacs.settings import load_settings
from trialpacs.trials.intake import store_for_site
from trialpacs.web.app import create_app

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(600)]

CONFIG = """\
version: 1
regions:
  - id: eu
storage_backends:
  - name: q-eu
    kind: local
    path: {tmp}/q-eu
    region: eu
    purpose: identified
profiles:
  - name: basic
    extends: trial
sites:
  - {{id: S1, name: One, region: eu, identified_backend: q-eu}}
trials:
  - id: T1
    name: Trial one
    profile: basic
    deid_regions: [local, eu]
    sites: [{{site: S1}}]
"""
SECRET = b"a" * 64


@dataclass
class Deployment:
    url: str
    data_dir: Path
    env: dict[str, str]

    def open(self) -> Archive:
        return Archive.open(load_settings(None, data_dir=self.data_dir, database_url=self.url))

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*trialpacs_cmd(), *args], env=self.env, capture_output=True, text=True, timeout=300
        )

    def wipe(self) -> None:
        """Lose everything: the database, the data directory, the named backend."""
        name = self.url.rsplit("/", 1)[1]
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        shutil.rmtree(self.data_dir)
        shutil.rmtree(self.data_dir.parent / "q-eu", ignore_errors=True)


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    data_dir = tmp_path / "data"
    with postgres_database() as url:
        env = {**os.environ, "TRIALPACS_DATA_DIR": str(data_dir), "TRIALPACS_DATABASE_URL": url}
        yield Deployment(url, data_dir, env)


def _fill(dep: Deployment) -> str:
    """Published studies, an identified study, a workspace file, a secret and a vault."""
    archive = dep.open()
    try:
        apply(archive, load_text(CONFIG.format(tmp=dep.data_dir.parent)))
        for n in range(3):
            study = generate_uid()
            datas = [
                make_bytes(study=study, patient_id=f"P{n}", instance_number=i, value=n * 10 + i)
                for i in range(2)
            ]
            where = Placement(collection="published", trial_id="T1", site_id="S1")
            assert all(
                isinstance(o, StoreOutcome) for o in store_many(archive, datas, placement=where)
            )
        (out,) = store_for_site(archive, [make_bytes(patient_name="SECRET^PATIENT")], "T1", "S1")
        assert isinstance(out, StoreOutcome)
        key = create_key(archive.db, "admin")
        Workspaces(archive.db, archive.store, 10**6).put(
            Principal("admin"), "admin", "file", "notes.txt", b"my notes"
        )
    finally:
        archive.close()
    (dep.data_dir / "deid.secret").write_bytes(b"pipeline-secret\n")
    with KeyVault(dep.data_dir / "deid-vault.sqlite", SECRET) as vault:
        vault.subject_id("T1|S1", b"patient-1", {"PatientID": "P1"}, lambda n: f"S01-{n:04d}")
    return key


def _snapshot(dep: Deployment, key: str) -> dict[str, object]:
    archive = dep.open()
    try:
        blobs = {
            (name, k): hashlib.sha256(store.get(k)).hexdigest()
            for name, store in backends(archive).items()
            for k in store.keys()  # noqa: SIM118 - a BlobStore
        }
        client = TestClient(create_app(archive))
        auth = {"Authorization": f"Bearer {key}"}
        studies = client.get("/dicomweb/studies", headers=auth).json()
        series = client.get("/dicomweb/series", params={"includefield": "all"}, headers=auth).json()
        study = studies[0]["0020000D"]["Value"][0]
        meta = client.get(f"/dicomweb/studies/{study}/metadata", headers=auth).json()
        client.close()
        return {
            "blobs": blobs,
            "qido": (studies, series, meta),
            "audit": [dict(e) for e in query(archive.db)],
        }
    finally:
        archive.close()


def test_backup_wipe_restore_verifies_chain_blobs_and_qido(
    deployment: Deployment, tmp_path: Path
) -> None:
    key = _fill(deployment)
    before = _snapshot(deployment, key)
    stores = {name for name, _ in before["blobs"]}  # type: ignore[attr-defined]
    assert {"published", "quarantine", "q-eu"} <= stores or {"published", "q-eu"} <= stores
    backup_dir = tmp_path / "backup"
    made = deployment.run("backup", str(backup_dir))
    assert made.returncode == 0, made.stderr

    deployment.wipe()
    restored = deployment.run("restore", str(backup_dir))
    assert restored.returncode == 0, restored.stderr
    assert "audit chain intact, every blob and instance verified" in restored.stderr

    after = _snapshot(deployment, key)  # the same API key works: it was restored
    assert after["blobs"] == before["blobs"]
    assert after["qido"] == before["qido"]
    # the trail is the old one, followed by backup and restore (and the snapshot's reads)
    old = before["audit"]
    assert after["audit"][: len(old)] == old  # type: ignore[index]
    actions = [e["action"] for e in after["audit"][len(old) :]]  # type: ignore[index]
    assert "backup.create" in actions and "backup.restore" in actions
    archive = deployment.open()
    try:
        assert verify(archive.db).ok
    finally:
        archive.close()
    assert (deployment.data_dir / "deid.secret").read_bytes() == b"pipeline-secret\n"
    # the key vault (a consistent SQLite copy) still links the pseudonym to the original
    with KeyVault(deployment.data_dir / "deid-vault.sqlite", SECRET) as vault:
        linked = vault.lookup("S01-0001", who="test", reason="restore check")
        assert [link.original["PatientID"] for link in linked] == ["P1"]
    # new rows continue after the restored keys (sequences moved past them)
    archive = deployment.open()
    try:
        (out,) = store_many(archive, [make_bytes()])
        assert isinstance(out, StoreOutcome)
    finally:
        archive.close()


def test_damaged_or_misdirected_restores_are_refused(
    deployment: Deployment, tmp_path: Path
) -> None:
    _fill(deployment)
    backup_dir = tmp_path / "backup"
    assert deployment.run("backup", str(backup_dir)).returncode == 0

    # into a deployment that holds data: refused, nothing touched
    busy = deployment.run("restore", str(backup_dir))
    assert busy.returncode == 1 and "empty deployment" in busy.stderr

    # a flipped byte in one blob: refused before anything is written
    blob = next(p for p in (backup_dir / "blobs" / "published").rglob("*.dcm"))
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))
    deployment.wipe()
    damaged = deployment.run("restore", str(backup_dir))
    assert damaged.returncode == 1
    assert "damaged" in damaged.stderr and blob.name in damaged.stderr
    archive = deployment.open()
    try:
        with archive.db.read() as session:
            from sqlalchemy import text

            assert session.execute(text("SELECT count(*) FROM instances")).scalar() == 0
    finally:
        archive.close()
