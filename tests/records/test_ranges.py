"""Byte ranges of a record's bytes: a <video> seeking in a published video, and the download.

The ranges are served after the same access checks as the whole body, and
each ranged request is an audit entry naming the part sent.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from labelled_records import hl7, person, video_clip

from trialpacs.access.apikeys import create_key
from trialpacs.archive import Archive
from trialpacs.audit.chain import query
from trialpacs.pipeline import qc
from trialpacs.pipeline.process import process_series
from trialpacs.records.export import Original
from trialpacs.records.formats import RecordFormat
from trialpacs.records.intake import Intake, take_in
from trialpacs.records.mp4cache import OpenVideo, VideoCache, cache_for, serve
from trialpacs.web.app import create_app
from trialpacs.web.ranges import ByteRange, RangeNotSatisfiable, select_range
from trials.support import configured


@pytest.mark.parametrize(
    ("header", "size", "want"),
    [
        (None, 100, None),
        ("bytes=0-9", 100, ByteRange(0, 9)),
        ("bytes=90-", 100, ByteRange(90, 99)),
        ("bytes=90-500", 100, ByteRange(90, 99)),  # clipped to the body
        ("bytes=-10", 100, ByteRange(90, 99)),  # the last ten bytes
        ("bytes=-500", 100, ByteRange(0, 99)),  # suffix longer than the body: all of it
        ("Bytes = 5 - 6", 100, ByteRange(5, 6)),  # unit case and whitespace
        ("bytes=0-1,5-9", 100, None),  # several ranges: the whole body
        ("bytes=9-5", 100, None),  # invalid: ignored
        ("bytes=a-b", 100, None),
        ("bytes=-", 100, None),
        ("items=0-5", 100, None),  # another unit: ignored
    ],
)
def test_select_range(header: str | None, size: int, want: ByteRange | None) -> None:
    assert select_range(header, size) == want


@pytest.mark.parametrize(("header", "size"), [("bytes=100-", 100), ("bytes=-0", 100),
                                              ("bytes=0-", 0), ("bytes=-5", 0)])  # fmt: skip
def test_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable):
        select_range(header, size)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Archive, str, str]]:
    """A published video record: its /rendered URL and its download URL."""
    archive = configured(
        tmp_path_factory.mktemp("ranges"), pipeline_executor="off", series_settle_seconds=0
    )
    p = person(random.Random(41))
    clip = video_clip(p, random.Random(41), frames=20).data
    res = take_in(archive, "ONCO1", "S01", clip, "clip.mp4", Intake(p.identity()))
    assert process_series(archive, res.series_uid, qc.PassThroughQc()).state == "published"
    rec = _client(archive, "reader@ONCO1").get("/api/trials/ONCO1/records").json()[0]
    rendered = (
        f"/dicomweb/studies/{rec['study_uid']}/series/{rec['series_uid']}"
        f"/instances/{rec['sop_uid']}/rendered"
    )
    yield archive, rendered, rec["download"]
    archive.close()


def _client(archive: Archive, *grants: str) -> TestClient:
    name = re.sub(r"[^A-Za-z0-9._-]", "-", "range-" + "-".join(grants))
    key = create_key(archive.db, name, grants=grants, scopes=["*"])
    return TestClient(create_app(archive), headers={"Authorization": f"Bearer {key}"})


@pytest.mark.slow
@pytest.mark.parametrize("route", ["rendered", "download"])
def test_a_video_is_served_in_byte_ranges(published: tuple[Archive, str, str], route: str) -> None:
    archive, rendered, download = published
    url = rendered if route == "rendered" else download
    reader = _client(archive, "reader@ONCO1")
    accept = {"Accept": "*/*"}  # what a <video> sends
    whole = reader.get(url, headers=accept)
    assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
    assert whole.headers["accept-ranges"] == "bytes"
    body, size = whole.content, len(whole.content)
    assert body[4:8] == b"ftyp" and size > 1000

    def ranged(spec: str, **extra: str) -> tuple[int, bytes, dict[str, str]]:
        r = reader.get(url, headers={**accept, "Range": spec, **extra})
        return r.status_code, r.content, dict(r.headers)

    status, part, headers = ranged("bytes=100-611")
    assert status == 206 and part == body[100:612]
    assert headers["content-range"] == f"bytes 100-611/{size}"
    assert headers["content-length"] == "512" and headers["content-type"] == "video/mp4"
    status, part, headers = ranged("bytes=0-")  # what Chromium asks first
    assert status == 206 and part == body
    status, part, headers = ranged(f"bytes={size - 300}-")
    assert status == 206 and part == body[-300:]
    status, part, headers = ranged("bytes=-200")
    assert status == 206 and part == body[-200:]
    assert headers["content-range"] == f"bytes {size - 200}-{size - 1}/{size}"
    status, part, headers = ranged(f"bytes={size}-")
    assert status == 416 and part == b"" and headers["content-range"] == f"bytes */{size}"
    status, part, _ = ranged("bytes=0-9,20-29")  # several ranges: the whole video
    assert status == 200 and part == body
    # If-Range: a part only of the same bytes the client already has
    status, part, _ = ranged("bytes=0-9", **{"If-Range": whole.headers["etag"]})
    assert status == 206 and part == body[:10]
    status, part, _ = ranged("bytes=0-9", **{"If-Range": '"something-else"'})
    assert status == 200 and part == body
    if route == "download":
        assert "attachment" in headers["content-disposition"]

    # the reader of another trial gets no byte of it, with or without a range
    outsider = _client(archive, "reader@OTHER1")
    for spec in ("bytes=0-", "bytes=-200"):
        r = outsider.get(url, headers={**accept, "Range": spec})
        assert r.status_code == 404 and b"ftyp" not in r.content
    assert outsider.get(url, headers=accept).status_code == 404

    # each ranged request is an entry of the trail, naming the part sent
    template = (
        "GET /api/records/{sop}/download"
        if route == "download"
        else "GET /dicomweb/studies/{study}/series/{series}/instances/{sop}/rendered"
    )
    mine = [(e, json.loads(e["detail"])) for e in query(archive.db) if e["action"] == template]
    ranges = [d.get("range") for _, d in mine if d["status"] == 206]
    assert f"bytes 100-611/{size}" in ranges and f"bytes {size - 200}-{size - 1}/{size}" in ranges
    assert [d.get("range") for _, d in mine if d["status"] == 416] == [f"bytes */{size}"]
    assert all("range" not in d for _, d in mine if d["status"] == 200)
    assert sum(e["outcome"] == "failure" and d["status"] == 404 for e, d in mine) == 3


@pytest.mark.slow
def test_both_routes_share_one_cached_mp4(published: tuple[Archive, str, str]) -> None:
    """The MP4 is built once per object; later ranges read the cached file."""
    archive, rendered, download = published
    reader = _client(archive, "reader@ONCO1")
    body = reader.get(rendered, headers={"Accept": "*/*"}).content
    assert reader.get(download).content == body
    cache = cache_for(archive.settings.data_dir)
    files = sorted(cache.root.glob("*.mp4"))
    assert len(files) == 1 and files[0].read_bytes() == body
    # a range of it now comes from the file, not from a new remux: replace the file's
    # bytes (same size) and the route serves what the file holds
    files[0].write_bytes(bytes(len(body)))
    part = reader.get(rendered, headers={"Accept": "*/*", "Range": "bytes=0-7"})
    assert part.status_code == 206 and part.content == bytes(8)
    files[0].write_bytes(body)


def test_a_report_download_answers_ranges_from_memory(tmp_path: Path) -> None:
    """Records other than videos are not cached; their download answers ranges all the same."""
    archive = configured(tmp_path, pipeline_executor="off", series_settle_seconds=0)
    try:
        p = person(random.Random(42))
        res = take_in(archive, "ONCO1", "S01", hl7(p, random.Random(42)).data, "m.hl7", Intake())
        assert process_series(archive, res.series_uid, qc.PassThroughQc()).state == "published"
        reader = _client(archive, "reader@ONCO1")
        url = reader.get("/api/trials/ONCO1/records").json()[0]["download"]
        whole = reader.get(url).content
        assert whole.startswith(b"MSH|")
        r = reader.get(url, headers={"Range": "bytes=4-7"})
        assert r.status_code == 206 and r.content == whole[4:8]
        assert r.headers["content-range"] == f"bytes 4-7/{len(whole)}"
        assert not list(cache_for(archive.settings.data_dir).root.glob("*"))
    finally:
        archive.close()


def _video(n: int, size: int) -> Original:
    return Original(bytes([n]) * size, "video/mp4", f"v{n}.mp4", RecordFormat.VIDEO)


def test_cache_keeps_the_most_recently_used_within_its_size(tmp_path: Path) -> None:
    cache = VideoCache(tmp_path / "c", max_bytes=250)
    built: list[str] = []

    def get(key: str, n: int, size: int = 100) -> Original | OpenVideo:
        def build() -> Original:
            built.append(key)
            return _video(n, size)

        got = serve(cache, key, build)
        if isinstance(got, OpenVideo):
            got.fh.close()
        return got

    get("a", 1)
    get("b", 2)
    hit = cache.open("a")  # a is read again
    assert hit is not None and hit.fh.read() == bytes([1]) * 100
    hit.fh.close()
    b = cache.lookup("b")
    assert b is not None
    os.utime(b.path, (1, 1))  # b is the least recently used
    get("c", 3)
    assert cache.lookup("b") is None and cache.lookup("a") is not None
    assert cache.lookup("c") is not None and built == ["a", "b", "c"]
    get("a", 1)
    assert built == ["a", "b", "c"]  # a hit: not built again
    # more than half the cache: served from memory, not kept
    assert isinstance(get("d", 4, 200), Original) and cache.lookup("d") is None
    # a record that is not a video is never kept
    pdf = Original(b"%PDF-1.4", "application/pdf", "r.pdf", RecordFormat.PDF)
    assert serve(cache, "e", lambda: pdf) is pdf and cache.lookup("e") is None
