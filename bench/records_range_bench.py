"""What one byte-range request of a video costs the server: read the DICOM, remux to MP4.

    .venv/bin/python bench/records_range_bench.py [--seconds 60] [--size 640x480] [--runs 3]

Every ranged request of ``/rendered`` or the download builds the MP4 again
from the published DICOM object (no cache), then sends the part asked for;
this times that work (parse + remux + the ETag hash) on a generated clip:
what the first request of a video costs (and every request of a video too
large for the cache). Later requests read their range from the MP4 kept by
``records.mp4cache``: timed as a 1 MiB range from the middle.
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from pydicom import dcmread

from trialpacs.records.dicomwrap import WrapInfo, wrap_video
from trialpacs.records.export import original_format
from trialpacs.records.identity import PatientIdentity
from trialpacs.records.mp4cache import OpenVideo, VideoCache, serve
from trialpacs.web.ranges import etag_of


def clip(frames: int, width: int, height: int) -> bytes:
    """An H.264 elementary stream of moving noise (a high bit rate: a large file)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="h264") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast"}
        base = np.random.default_rng(1).integers(0, 255, (height, width, 3), dtype=np.uint8)
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.roll(base, i * 3, axis=1), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    frames = args.seconds * 25
    stream = clip(frames, width, height)
    patient = PatientIdentity(patient_id="BENCH", name="BENCH^RANGE")
    dicom = wrap_video(stream, width, height, frames, Fraction(25), WrapInfo(patient))
    print(f"clip: {frames} frames {args.size}, DICOM {len(dicom) / 1e6:.1f} MB")
    for _ in range(args.runs):
        started = time.perf_counter()
        mp4 = original_format(dcmread(io.BytesIO(dicom))).data
        etag_of(mp4)
        took = time.perf_counter() - started
        print(f"parse+remux+etag: {took:.3f} s, MP4 {len(mp4) / 1e6:.1f} MB")
    dataset = dcmread(io.BytesIO(dicom))
    with tempfile.TemporaryDirectory() as tmp:
        cache = VideoCache(Path(tmp))
        first = serve(cache, "bench", lambda: original_format(dataset))
        if isinstance(first, OpenVideo):
            first.fh.close()
        for _ in range(args.runs):
            started = time.perf_counter()
            hit = cache.open("bench")
            assert hit is not None
            hit.fh.seek(hit.video.size // 2)
            part = hit.fh.read(1 << 20)
            hit.fh.close()
            took = time.perf_counter() - started
            print(f"cached 1 MiB range: {took * 1000:.2f} ms ({len(part)} bytes)")
    print("load average:", " ".join(f"{v:.2f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()
