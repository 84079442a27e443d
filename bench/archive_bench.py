"""Archive foundation benchmark: STOW-RS ingest and QIDO study-list latency at 10,000 instances.

One command: ``.venv/bin/python bench/archive_bench.py [--instances 10000]``.
Starts ``trialpacs serve`` (SQLite + local files, the embedded default) on a
free loopback port in a temporary directory, generates tiny 2x2 MR instances
with pydicom (index-bound: 20 instances per series, 2 series per study),
sends them with STOW-RS in batches of 50 from 4 client threads, then times
OHIF's study-list query (limit 101 with its includefields) and a series query.
Orthanc side-by-side figures are in ``bench/dimse_bench.py``.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support.services import create_token, free_port, wait_http  # noqa: E402

OHIF_STUDY_LIST = {
    "limit": "101",
    "offset": "0",
    "fuzzymatching": "false",
    "includefield": "00081030,00080060,00080090,00100030",
}


def make_instance(study: str, series: str, n: int, patient: int) -> bytes:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.PatientName = f"PATIENT^{patient:05d}"
    ds.PatientID = f"P{patient:05d}"
    ds.PatientBirthDate = "19700101"
    ds.StudyDate = f"2024{(patient % 12) + 1:02d}{(patient % 28) + 1:02d}"
    ds.StudyTime = "101010"
    ds.StudyDescription = "BENCH STUDY"
    ds.SeriesDescription = "T1"
    ds.Modality = "MR"
    ds.SeriesNumber = 1
    ds.InstanceNumber = n
    ds.Rows = ds.Columns = 2
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = np.full(4, n, dtype="<u2").tobytes()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def generate(count: int) -> list[bytes]:
    out: list[bytes] = []
    patient = 0
    while len(out) < count:
        study = generate_uid()
        for _ in range(2):
            series = generate_uid()
            for n in range(1, 21):
                if len(out) < count:
                    out.append(make_instance(study, series, n, patient))
        patient += 1
    return out


def multipart(parts: list[bytes]) -> tuple[bytes, str]:
    boundary = "benchboundary"
    chunks = []
    for p in parts:
        chunks.append(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode())
        chunks.append(p)
        chunks.append(b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f'multipart/related; type="application/dicom"; boundary={boundary}'


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="trialpacs-bench-"))
    port = free_port()
    env = {**os.environ, "TRIALPACS_DATA_DIR": str(tmp), "TRIALPACS_DICOM_PORT": "0"}
    token = create_token(env, "bench")
    proc = subprocess.Popen(
        [sys.executable, "-m", "trialpacs.cli.main", "serve", "--http-port", str(port),
         "--log-level", "warning"],
        env=env,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/health", proc=proc)
        headers = {"Authorization": f"Bearer {token}"}
        print(f"generating {args.instances} instances ...", flush=True)
        data = generate(args.instances)
        total_bytes = sum(map(len, data))
        batches = [data[i : i + args.batch] for i in range(0, len(data), args.batch)]
        bodies = [multipart(b) for b in batches]

        def send(item: tuple[bytes, str]) -> None:
            body, ctype = item
            with httpx.Client(timeout=300) as client:
                r = client.post(
                    base + "/dicomweb/studies",
                    content=body,
                    headers={**headers, "Content-Type": ctype},
                )
                r.raise_for_status()

        start = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(send, bodies))
        elapsed = time.perf_counter() - start
        print(
            f"STOW-RS: {args.instances} instances in {elapsed:.1f}s = "
            f"{args.instances / elapsed:.0f} inst/s ({total_bytes / elapsed / 1e6:.1f} MB/s), "
            f"batch {args.batch}, {args.clients} clients"
        )

        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            def timed(path: str, params: dict[str, str]) -> list[float]:
                client.get(path, params=params).raise_for_status()  # warm-up
                out = []
                for _ in range(args.queries):
                    t = time.perf_counter()
                    r = client.get(path, params=params)
                    r.raise_for_status()
                    out.append((time.perf_counter() - t) * 1000)
                return out

            study_list = timed("/dicomweb/studies", OHIF_STUDY_LIST)
            first = client.get("/dicomweb/studies", params={"limit": "1"}).json()[0]
            study_uid = first["0020000D"]["Value"][0]
            series = timed(f"/dicomweb/studies/{study_uid}/series", {})
            name = timed("/dicomweb/studies", {"PatientName": "PATIENT^001*", "limit": "101"})
        for label, values in (
            ("QIDO OHIF study list (limit 101)", study_list),
            ("QIDO series of one study", series),
            ("QIDO patient-name wildcard", name),
        ):
            print(
                f"{label}: p50 {percentile(values, 50):.1f} ms, "
                f"p95 {percentile(values, 95):.1f} ms (n={len(values)}, "
                f"mean {statistics.mean(values):.1f})"
            )
        disk = sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file())
        print(f"disk: {disk / args.instances / 1024:.1f} KiB per instance (index + blobs)")
    finally:
        proc.terminate()
        proc.wait(20)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
