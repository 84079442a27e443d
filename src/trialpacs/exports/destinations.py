"""Where a package goes: a local directory, an S3 bucket of the trial's regions, or a
staging directory behind a short-lived download link.

Every destination can say what it already holds (the SHA-256 of a file), so
an interrupted export is resumed by running it again: files already written
with the right checksum are skipped.

An S3 destination must be a configured storage backend for de-identified
data (``storage_backends``, purpose ``deidentified``) in one of the regions
the trial allows for de-identified data (``deid_regions``); any other
bucket is refused before a byte is written.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from trialpacs.archive import Archive
from trialpacs.errors import InvalidInput, TrialpacsError
from trialpacs.storage.atomic import write_atomic
from trialpacs.trials.backends import load_specs
from trialpacs.trials.catalog import TrialInfo

DOWNLOAD = "download"
_PART_RE_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/")


class DestinationRefused(TrialpacsError):
    """The destination is not allowed for this trial's data (region, purpose)."""


class Destination(Protocol):
    kind: str  # local | s3 | download
    label: str  # what the history and the audit trail record

    def existing(self, path: str) -> str | None:
        """SHA-256 of the file at ``path`` if the destination holds one."""

    def put(self, path: str, data: bytes, sha256: str) -> None: ...

    def finish(self) -> None:
        """Make everything put so far durable."""


def check_path(path: str) -> str:
    """Package paths are built from validated IDs and UIDs; refuse anything else."""
    if not path or path.startswith("/") or ".." in path.split("/") or set(path) - _PART_RE_CHARS:
        raise ValueError(f"invalid package path {path!r}")
    return path


class LocalDirectory:
    kind = "local"

    def __init__(self, root: Path, kind: str = "local") -> None:
        self.root = root.resolve()
        self.kind = kind
        self.label = str(self.root)
        self.root.mkdir(parents=True, exist_ok=True)

    def existing(self, path: str) -> str | None:
        target = self.root / check_path(path)
        if not target.is_file():
            return None
        digest = hashlib.sha256()
        with target.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()

    def put(self, path: str, data: bytes, sha256: str) -> None:
        """Temp file and rename: a file is whole or absent, never half written.

        Not fsynced one by one (that made exports disk-latency bound):
        :meth:`finish` syncs the file system once, before the closing files
        are written; a crash before that is repaired by resuming, which
        re-checks every file's checksum.
        """
        write_atomic(self.root / check_path(path), data, prefix=".part-")

    def finish(self) -> None:
        _syncfs(self.root)


def _syncfs(path: Path) -> None:
    """syncfs(2) on the file system holding ``path`` (only that one), else sync(2)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if getattr(libc, "syncfs", None) is None or libc.syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


class S3Destination:
    kind = "s3"

    def __init__(self, bucket: str, prefix: str, client: Any) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.client = client
        self.label = f"s3://{bucket}/{self.prefix}"
        self._listed: set[str] | None = None
        self._lock = threading.Lock()

    def _present(self) -> set[str]:
        """Keys under the prefix when the export started (what a resume may skip)."""
        with self._lock:
            if self._listed is None:
                pages = self.client.get_paginator("list_objects_v2").paginate(
                    Bucket=self.bucket, Prefix=self.prefix
                )
                self._listed = {o["Key"] for page in pages for o in page.get("Contents", [])}
            return self._listed

    def existing(self, path: str) -> str | None:
        key = self.prefix + check_path(path)
        if key not in self._present():  # one listing instead of a HEAD per new file
            return None
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise
        value = head.get("Metadata", {}).get("sha256")
        return str(value) if value else None

    def put(self, path: str, data: bytes, sha256: str) -> None:
        self.client.put_object(
            Bucket=self.bucket,
            Key=self.prefix + check_path(path),
            Body=data,
            Metadata={"sha256": sha256},
        )

    def finish(self) -> None:
        """A PUT that returned is durable."""


def staging_dir(archive: Archive, export_id: str) -> Path:
    if not export_id.isalnum():
        raise ValueError(f"invalid export id {export_id!r}")
    return Path(archive.settings.data_dir) / "exports" / export_id


STAGING_KEEP_SECONDS = 24 * 3600


def prune_staging(archive: Archive, keep_seconds: float = STAGING_KEEP_SECONDS) -> int:
    """Remove download packages staged longer ago than ``keep_seconds`` (links expired)."""
    root = Path(archive.settings.data_dir) / "exports"
    if not root.is_dir():
        return 0
    cutoff = time.time() - keep_seconds
    removed = 0
    for folder in root.iterdir():
        if folder.is_dir() and folder.name.isalnum() and folder.stat().st_mtime < cutoff:
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


def open_destination(
    archive: Archive,
    spec: str,
    trial: TrialInfo,
    export_id: str,
    *,
    allow_local: bool = True,
) -> Destination:
    """``download``, ``s3://BUCKET/PREFIX`` or (CLI only) a local directory."""
    spec = (spec or "").strip()
    if not spec:
        raise InvalidInput(
            "an export needs a destination: a directory, s3://bucket/prefix or download"
        )
    if spec == DOWNLOAD:
        prune_staging(archive)
        return LocalDirectory(staging_dir(archive, export_id), kind=DOWNLOAD)
    if spec.startswith("s3://"):
        return _s3(archive, spec, trial)
    if "://" in spec:
        raise InvalidInput(f"destination {spec!r}: use a directory, s3://bucket/prefix or download")
    if not allow_local:
        raise InvalidInput(
            "the API exports to s3://bucket/prefix or a download link; "
            "local directories are for the command line"
        )
    return LocalDirectory(Path(spec))


def _s3(archive: Archive, spec: str, trial: TrialInfo) -> S3Destination:
    url = urlparse(spec)
    bucket, prefix = url.netloc, url.path.lstrip("/")
    if not bucket:
        raise InvalidInput(f"destination {spec!r} names no bucket")
    candidates = [
        b for b in load_specs(archive).values()
        if b.kind == "s3" and b.options.get("bucket") == bucket
    ]  # fmt: skip
    if not candidates:
        raise DestinationRefused(
            f"bucket {bucket!r} is not a configured storage backend; exports go only to "
            "buckets declared (with their region) in storage_backends"
        )
    allowed = [b for b in candidates if b.purpose == "deidentified"]
    if not allowed:
        raise DestinationRefused(f"bucket {bucket!r} is for identified data, not for exports")
    in_region = [b for b in allowed if b.region in trial.deid_regions]
    if not in_region:
        regions = ", ".join(sorted({b.region for b in allowed}))
        raise DestinationRefused(
            f"bucket {bucket!r} is in region {regions}; trial {trial.trial_id} allows "
            f"de-identified data only in: {', '.join(trial.deid_regions) or 'no region'}"
        )
    o = in_region[0].options
    client = boto3.client(
        "s3",
        endpoint_url=o.get("endpoint_url"),
        region_name=o.get("s3_region"),
        config=Config(retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=16),
    )
    base = str(o.get("prefix", "")).strip("/")
    full = "/".join(p for p in (base, prefix.strip("/")) if p)
    return S3Destination(bucket, full, client)
