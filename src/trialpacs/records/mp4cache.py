"""The MP4 of a published video, kept on disk so each byte-range request reads only its part.

A ``<video>`` asks its source in ranges: ``bytes=0-`` first, then from
wherever the reviewer seeks. Building the MP4 means reading the whole DICOM
object and remuxing its stream (0.1 s and a copy of the file in memory for
30 MB; seconds and gigabytes for an hour of endoscopy), so without a cache
every seek paid for the whole file. The first request builds the MP4 and
writes it here; later ones (any reviewer, either route) read their range
from the file.

Entries are named by the blob key, which carries a hash of the DICOM
object's bytes (``ingest.store``): a changed object has a new key, so an
entry never goes stale, and the ETag derived from the key is a strong
validator (the remux is deterministic). Files are written to a temporary
name and renamed, so a reader never sees half a file. The cache holds at
most ``max_bytes``; the least recently used files go first, and a video
larger than half of it is served from memory, uncached.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from trialpacs.records.export import Original
from trialpacs.records.formats import RecordFormat
from trialpacs.storage.atomic import write_atomic

DEFAULT_MAX_BYTES = 4 << 30  # 4 GiB on the server's data disk
_lock = threading.Lock()  # one eviction pass at a time


@dataclass(frozen=True)
class CachedVideo:
    path: Path
    size: int
    media_type: str
    filename: str
    etag: str


def _name(blob_key: str) -> str:
    return hashlib.sha256(blob_key.encode()).hexdigest()[:40]


def etag_for(blob_key: str) -> str:
    """Strong ETag of the MP4 built from the object under ``blob_key``."""
    return '"mp4-' + _name(blob_key)[:32] + '"'


class VideoCache:
    def __init__(self, root: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.root = root
        self.max_bytes = max_bytes

    def lookup(self, blob_key: str) -> CachedVideo | None:
        """The cached MP4 of that object, or None (the caller builds it and calls put)."""
        base = self.root / _name(blob_key)
        try:
            meta = json.loads(base.with_suffix(".json").read_text())
            path = base.with_suffix(".mp4")
            size = path.stat().st_size
            os.utime(path)  # recently used
        except (OSError, ValueError):
            return None
        if size != meta.get("size"):
            return None
        return CachedVideo(path, size, meta["media_type"], meta["filename"], etag_for(blob_key))

    def put(self, blob_key: str, original: Original) -> CachedVideo | None:
        """Write the MP4; None when it is too large to keep (served from memory then)."""
        size = len(original.data)
        if size > self.max_bytes // 2:
            return None
        self.root.mkdir(parents=True, exist_ok=True)
        base = self.root / _name(blob_key)
        path = base.with_suffix(".mp4")
        meta = {"size": size, "media_type": original.media_type, "filename": original.filename}
        write_atomic(path, original.data)
        write_atomic(base.with_suffix(".json"), json.dumps(meta).encode())
        self._evict(keep=path)
        return CachedVideo(path, size, original.media_type, original.filename, etag_for(blob_key))

    def open(self, blob_key: str) -> OpenVideo | None:
        """The cached MP4, opened (an eviction after this does not cut the reader off)."""
        hit = self.lookup(blob_key)
        if hit is None:
            return None
        try:
            return OpenVideo(hit, hit.path.open("rb"))
        except OSError:
            return None

    def _evict(self, keep: Path) -> None:
        with _lock:
            files = []
            for p in self.root.glob("*.mp4"):
                try:
                    st = p.stat()
                except OSError:
                    continue
                files.append((st.st_mtime, st.st_size, p))
            total = sum(size for _, size, _ in files)
            for _, size, p in sorted(files):
                if total <= self.max_bytes:
                    break
                if p == keep:
                    continue
                p.unlink(missing_ok=True)
                p.with_suffix(".json").unlink(missing_ok=True)
                total -= size


@dataclass(frozen=True)
class OpenVideo:
    video: CachedVideo
    fh: BinaryIO


def cache_for(data_dir: Path) -> VideoCache:
    return VideoCache(data_dir / "cache" / "records-mp4")


def serve(cache: VideoCache, blob_key: str, build: Callable[[], Original]) -> Original | OpenVideo:
    """A video's MP4 from the cache (built and kept on a miss); other records as built."""
    hit = cache.open(blob_key)
    if hit is not None:
        return hit
    original = build()
    if original.format is RecordFormat.VIDEO:
        cached = cache.put(blob_key, original)
        if cached is not None:
            try:
                return OpenVideo(cached, cached.path.open("rb"))
            except OSError:
                pass
    return original
