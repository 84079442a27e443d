"""Backup and restore of a whole deployment: index, blobs, key vault, secrets, audit trail.

A backup is a directory::

    manifest.json            format, schema heads, counts, SHA-256 of every file below
    index/<table>.jsonl.gz   every row of every index table (audit trail included)
    blobs/<backend>/<key>    every blob of every storage backend
    blobs.jsonl.gz           backend, key, size and SHA-256 of each blob
    files/<name>             the secrets and the key vault kept in DATA_DIR

Rows are read in one repeatable-read transaction (PostgreSQL), so the index
is a consistent snapshot even while the server runs; blobs are copied after
it, so a blob stored meanwhile is an orphan in the backup, never a row
without bytes. Tables are found by reflection, so every table another
package adds is carried without this module knowing it.

Restore refuses to start unless the whole backup checks out (every file's
hash, every blob's hash) and the target index is empty and on the same
schema; it then writes blobs first, rows second (in foreign-key order, in one
transaction), files last, and verifies the result: the audit chain from its
first entry, every blob against the manifest, and every instance row against
the content digest of its restored blob.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import json
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, MetaData, Table, func, select, text

from trialpacs import __version__
from trialpacs.archive import Archive
from trialpacs.audit import verify as verify_audit
from trialpacs.dicom.parse import parse_part10
from trialpacs.errors import TrialpacsError
from trialpacs.index.migrate import current
from trialpacs.index.models import Instance
from trialpacs.storage import BlobStore

FORMAT = 1
SKIP_TABLES = frozenset({"alembic_version"})
# DATA_DIR files that are part of the deployment's state (secrets, key vault, cursors).
STATE_FILES = (
    "deid.secret",  # pipeline pseudonyms, UIDs and date shifts
    "deid-secret",  # the deid command's secret
    "deid-vault.sqlite",  # the key vault (linkage originals <-> pseudonyms)
    "audit-signing.key",  # Ed25519 key of audit checkpoints
    "audit-syslog.cursor",  # how far syslog forwarding got
)
SQLITE_FILES = frozenset({"deid-vault.sqlite"})
BATCH = 1000

Progress = Callable[[str, int, int | None], None]  # stage, advance, total (None: unknown)


def _no_progress(stage: str, advance: int, total: int | None) -> None:
    return None


class BackupError(TrialpacsError):
    """The backup is damaged or does not fit the target; nothing was changed."""


@dataclass
class Report:
    path: Path
    tables: dict[str, int] = field(default_factory=dict)
    blobs: int = 0
    blob_bytes: int = 0
    files: list[str] = field(default_factory=list)
    audit_entries: int = 0
    problems: list[str] = field(default_factory=list)


# --- values as JSON -------------------------------------------------------------


def _encode(value: Any) -> Any:
    if isinstance(value, bytes | memoryview):
        return {"$b": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, dt.datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$d": value.isoformat()}
    if isinstance(value, Decimal):
        return {"$n": str(value)}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        ((tag, raw),) = value.items()
        if tag == "$b":
            return base64.b64decode(raw)
        if tag == "$dt":
            return dt.datetime.fromisoformat(raw)
        if tag == "$d":
            return dt.date.fromisoformat(raw)
        if tag == "$n":
            return Decimal(raw)
    return value


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --- what the deployment holds --------------------------------------------------------


def _tables(conn: Connection) -> list[Table]:
    meta = MetaData()
    meta.reflect(bind=conn)
    return [t for t in meta.sorted_tables if t.name not in SKIP_TABLES]


def backends(archive: Archive) -> dict[str, BlobStore]:
    """Every storage backend of the deployment, by name (published, quarantine, named)."""
    from trialpacs.trials.backends import load_specs, registry

    reg = registry(archive)
    return {name: reg.store(name) for name in sorted(load_specs(archive))}


# --- backup -----------------------------------------------------------------------


def backup(archive: Archive, dest: Path, progress: Progress = _no_progress) -> Report:
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise BackupError(f"{dest} is not empty: a backup goes into a new directory")
    (dest / "index").mkdir(parents=True, exist_ok=True)
    report = Report(path=dest)
    files: dict[str, str] = {}

    with archive.db.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            tables = _tables(conn)
            counts = {t.name: int(conn.execute(select(func.count()).select_from(t)).scalar() or 0)
                      for t in tables}  # fmt: skip
            progress("index", 0, sum(counts.values()))
            for table in tables:
                rel = f"index/{table.name}.jsonl.gz"
                columns = [c.name for c in table.columns]
                order = list(table.primary_key.columns) or list(table.columns)
                with gzip.open(dest / rel, "wt", encoding="utf-8", compresslevel=3) as out:
                    out.write(json.dumps({"table": table.name, "columns": columns}) + "\n")
                    result = conn.execution_options(stream_results=True, yield_per=BATCH).execute(
                        select(table).order_by(*order)
                    )
                    n = 0
                    for row in result:
                        out.write(json.dumps([_encode(v) for v in row]) + "\n")
                        n += 1
                        if n % BATCH == 0:
                            progress("index", BATCH, None)
                    progress("index", n % BATCH, None)
                report.tables[table.name] = n
                files[rel] = _sha256_file(dest / rel)

    stores = backends(archive)
    with gzip.open(dest / "blobs.jsonl.gz", "wt", encoding="utf-8") as listing:
        for name, store in stores.items():
            for key in store.keys():  # noqa: SIM118 - a BlobStore, not a dict
                data = store.get(key)
                target = dest / "blobs" / name / key
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                digest = hashlib.sha256(data).hexdigest()
                listing.write(json.dumps({"store": name, "key": key, "size": len(data),
                                          "sha256": digest}) + "\n")  # fmt: skip
                report.blobs += 1
                report.blob_bytes += len(data)
                progress("blobs", 1, None)
    files["blobs.jsonl.gz"] = _sha256_file(dest / "blobs.jsonl.gz")

    (dest / "files").mkdir(exist_ok=True)
    data_dir = Path(archive.settings.data_dir)
    for name in STATE_FILES:
        source = data_dir / name
        if not source.is_file():
            continue
        target = dest / "files" / name
        if name in SQLITE_FILES:  # a consistent copy of a live SQLite file
            with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
                src.backup(dst)
        else:
            shutil.copyfile(source, target)
        os.chmod(target, 0o600)
        files[f"files/{name}"] = _sha256_file(target)
        report.files.append(name)
        progress("files", 1, None)

    report.audit_entries = report.tables.get("audit_log", 0)
    manifest = {
        "format": FORMAT,
        "trialpacs": __version__,
        "created": dt.datetime.now(dt.UTC).isoformat(),
        "dialect": archive.db.engine.dialect.name,
        "schema": current(archive.db.engine),
        "tables": report.tables,
        "backends": sorted(stores),
        "blobs": report.blobs,
        "blob_bytes": report.blob_bytes,
        "files": files,
    }
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return report


# --- restore ------------------------------------------------------------------------


def _manifest(source: Path) -> dict[str, Any]:
    path = source / "manifest.json"
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"{source} is not a trialpacs backup: cannot read {path}: {exc}") from exc
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{path}: backup format {manifest.get('format')!r}, expected {FORMAT}")
    return manifest


def _blob_listing(source: Path) -> Iterator[dict[str, Any]]:
    with gzip.open(source / "blobs.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            yield json.loads(line)


def check_backup(source: Path, progress: Progress = _no_progress) -> dict[str, Any]:
    """Every file and blob against its recorded hash; raises naming the first damage."""
    manifest = _manifest(source)
    for rel, digest in manifest["files"].items():
        path = source / rel
        if not path.is_file():
            raise BackupError(f"backup is incomplete: {rel} is missing")
        if _sha256_file(path) != digest:
            raise BackupError(f"backup is damaged: {rel} does not match its SHA-256")
    progress("check", 0, int(manifest["blobs"]))
    seen = 0
    for entry in _blob_listing(source):
        path = source / "blobs" / entry["store"] / entry["key"]
        if not path.is_file():
            raise BackupError(f"backup is incomplete: blob {entry['store']}/{entry['key']} missing")
        if _sha256_file(path) != entry["sha256"]:
            raise BackupError(
                f"backup is damaged: blob {entry['store']}/{entry['key']} "
                "does not match its SHA-256"
            )
        seen += 1
        progress("check", 1, None)
    if seen != manifest["blobs"]:
        raise BackupError(f"backup lists {seen} blobs, its manifest says {manifest['blobs']}")
    return manifest


def restore(archive: Archive, source: Path, progress: Progress = _no_progress) -> Report:
    """Restore ``source`` into the (empty) deployment ``archive`` points at, then verify it."""
    source = Path(source)
    manifest = check_backup(source, progress)
    schema = current(archive.db.engine)
    if manifest["schema"] != schema:
        raise BackupError(
            f"backup is of schema {manifest['schema']}, this index is at {schema}: restore "
            "with the trialpacs version that made the backup, then upgrade"
        )
    with archive.db.engine.connect() as conn:
        for name in ("instances", "audit_log"):
            if conn.execute(text(f"SELECT count(*) FROM {name}")).scalar():
                raise BackupError(
                    f"the target index already holds {name} rows: restore only into an "
                    "empty deployment (new database, new data directory)"
                )
    data_dir = Path(archive.settings.data_dir)
    for name in manifest["files"]:
        if name.startswith("files/"):
            target = data_dir / name.removeprefix("files/")
            if target.exists() and _sha256_file(target) != manifest["files"][name]:
                raise BackupError(
                    f"{target} exists and differs from the backup's copy: move it away first "
                    "(restoring must never silently replace a secret or a key vault)"
                )

    report = Report(path=source)
    # Rows first, in one transaction: backend definitions come from the index.
    with archive.db.engine.begin() as conn:
        tables = {t.name: t for t in _tables(conn)}
        missing = set(manifest["tables"]) - set(tables)
        if missing:
            raise BackupError(f"the target index has no table(s) {sorted(missing)}")
        for table in reversed(list(tables.values())):  # rows migrations may have seeded
            seeded = conn.execute(select(func.count()).select_from(table)).scalar()
            if table.name in manifest["tables"] and seeded:
                conn.execute(table.delete())
        progress("index", 0, sum(manifest["tables"].values()))
        for table in tables.values():
            if table.name not in manifest["tables"]:
                continue
            report.tables[table.name] = _load_table(conn, table, source, progress)
        if conn.dialect.name == "postgresql":
            _reset_sequences(conn, list(tables.values()))

    stores = backends(archive)
    for entry in _blob_listing(source):
        store = stores.get(entry["store"])
        if store is None:
            raise BackupError(f"no storage backend {entry['store']!r} after restoring the index")
        store.put(entry["key"], (source / "blobs" / entry["store"] / entry["key"]).read_bytes())
        report.blobs += 1
        report.blob_bytes += int(entry["size"])
        progress("blobs", 1, None)

    data_dir.mkdir(parents=True, exist_ok=True)
    for rel in manifest["files"]:
        if rel.startswith("files/"):
            target = data_dir / rel.removeprefix("files/")
            shutil.copyfile(source / rel, target)
            os.chmod(target, 0o600)
            report.files.append(target.name)
    report.problems = verify_restored(archive, source, progress)
    report.audit_entries = report.tables.get("audit_log", 0)
    return report


def _load_table(conn: Connection, table: Table, source: Path, progress: Progress) -> int:
    path = source / "index" / f"{table.name}.jsonl.gz"
    n = 0
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        header = json.loads(fh.readline())
        columns: list[str] = header["columns"]
        unknown = set(columns) - {c.name for c in table.columns}
        if unknown:
            raise BackupError(f"table {table.name}: the target has no column(s) {sorted(unknown)}")
        batch: list[dict[str, Any]] = []
        for line in fh:
            batch.append(dict(zip(columns, map(_decode, json.loads(line)), strict=True)))
            if len(batch) == BATCH:
                conn.execute(table.insert(), batch)
                n += len(batch)
                progress("index", len(batch), None)
                batch = []
        if batch:
            conn.execute(table.insert(), batch)
            n += len(batch)
            progress("index", len(batch), None)
    return n


def _reset_sequences(conn: Connection, tables: list[Table]) -> None:
    """Rows came with their keys: move each serial sequence past the highest one."""
    for table in tables:
        pk = list(table.primary_key.columns)
        if len(pk) != 1:
            continue
        col = pk[0].name
        seq = conn.execute(
            text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": col}
        ).scalar()
        if seq:
            conn.execute(
                text(
                    f'SELECT setval(:s, coalesce((SELECT max("{col}") FROM "{table.name}"), 0) '
                    f"+ 1, false)"
                ),
                {"s": seq},
            )


def verify_restored(archive: Archive, source: Path, progress: Progress = _no_progress) -> list[str]:
    """What does not match after a restore (empty: the deployment is whole)."""
    problems: list[str] = []
    result = verify_audit(archive.db)
    if not result.ok:
        problems.append(f"audit chain: {result.broken}")
    stores = backends(archive)
    progress("verify", 0, None)
    for entry in _blob_listing(source):
        try:
            data = stores[entry["store"]].get(entry["key"])
        except Exception as exc:
            problems.append(f"blob {entry['store']}/{entry['key']}: cannot read back ({exc})")
            continue
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            problems.append(f"blob {entry['store']}/{entry['key']}: SHA-256 differs after restore")
        progress("verify", 1, None)
    with archive.db.read() as session:
        rows = session.execute(select(Instance.store, Instance.blob_key, Instance.sha256))
        for store_name, key, digest in rows:
            name = store_name or "published"
            try:
                data = stores[name].get(key)
            except Exception:
                problems.append(f"instance blob {name}/{key}: missing")
                continue
            try:
                same = parse_part10(data).content_digest() == digest
            except TrialpacsError as exc:
                problems.append(f"instance blob {name}/{key}: not readable DICOM ({exc})")
                continue
            if not same:
                problems.append(f"instance blob {name}/{key}: content does not match the index")
    return problems
