"""trialpacs against Orthanc, side by side: DIMSE and DICOMweb ingest, QIDO, WADO, RSS, disk.

One command (as root, for the private network namespace)::

    .venv/bin/python bench/dimse_bench.py            # full run, ~10 min on 2 cores
    .venv/bin/python bench/dimse_bench.py --quick    # smaller counts, ~3 min

Orthanc 1.10 cannot bind to loopback only, so the script re-runs itself in a
private network namespace (``unshare -n``, loopback up) where both servers
and every client live; nothing is reachable from outside. Both servers get a
fresh data directory, the same maximum PDU size and the same thread counts;
Orthanc runs with ``StorageAccessOnFind: Never`` and no authentication, we run
with ``--no-auth`` (loopback only). Every storescu, and Orthanc, get
``TCP_NODELAY=1`` (Debian's DCMTK leaves Nagle on otherwise).

Each figure is measured on trialpacs, then on Orthanc, with fresh instances
(never duplicates), so the two never compete for the two cores. Data are made
with pydicom here: 2x2 MR images (index-bound) and 512x512 16-bit CT slices
(0.5 MB). Ratios are trialpacs/Orthanc: above 1 is better for throughput,
below 1 is better for latency, RSS and disk.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import dcmwrite
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support.services import free_port, wait_http  # noqa: E402

ORTHANC = "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
NETNS_FLAG = "TRIALPACS_BENCH_NETNS"
OHIF_STUDY_LIST = {
    "limit": "101",
    "offset": "0",
    "fuzzymatching": "false",
    "includefield": "00081030,00080060",
}
CT_SIDE = 512


# -- data ------------------------------------------------------------------------


class Factory:
    """Unique instances on demand; studies of 2 series x 20 (tiny) or 1 x 50 (CT)."""

    def __init__(self) -> None:
        self.patient = 0
        self.ct_pixels = (
            np.random.default_rng(1).integers(0, 4096, CT_SIDE * CT_SIDE, dtype=np.uint16)
        ).tobytes()

    def tiny(self, count: int, per_series: int = 20, series_per_study: int = 2) -> list[bytes]:
        return list(self._make(count, per_series, series_per_study, ct=False))

    def ct(self, count: int, per_series: int = 50) -> list[bytes]:
        return list(self._make(count, per_series, 1, ct=True))

    def _make(
        self, count: int, per_series: int, series_per_study: int, ct: bool
    ) -> Iterator[bytes]:
        made = 0
        while made < count:
            self.patient += 1
            study = generate_uid()
            for s in range(series_per_study):
                series = generate_uid()
                for n in range(1, per_series + 1):
                    if made >= count:
                        return
                    yield self._instance(study, series, s + 1, n, ct)
                    made += 1

    def _instance(self, study: str, series: str, series_no: int, n: int, ct: bool) -> bytes:
        ds = Dataset()
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2" if ct else "1.2.840.10008.5.1.4.1.1.4"
        ds.SOPInstanceUID = generate_uid()
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series
        ds.PatientName = f"BENCH^PATIENT{self.patient:05d}"
        ds.PatientID = f"P{self.patient:06d}"
        ds.PatientBirthDate = "19700101"
        ds.PatientSex = "O"
        ds.StudyDate = f"2024{(self.patient % 12) + 1:02d}{(self.patient % 28) + 1:02d}"
        ds.StudyTime = "101010"
        ds.AccessionNumber = f"A{self.patient:07d}"
        ds.StudyID = "1"
        ds.StudyDescription = "BENCH STUDY"
        ds.ReferringPhysicianName = "REF^DOC"
        ds.SeriesDescription = "AXIAL" if ct else "T1"
        ds.Modality = "CT" if ct else "MR"
        ds.SeriesNumber = series_no
        ds.InstanceNumber = n
        ds.ImagePositionPatient = [0, 0, n]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [0.7, 0.7]
        ds.SliceThickness = 1
        side = CT_SIDE if ct else 2
        ds.Rows = ds.Columns = side
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.PixelData = self.ct_pixels if ct else np.full(4, n, dtype="<u2").tobytes()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta = meta
        buf = DicomBytesIO()
        dcmwrite(buf, ds, enforce_file_format=True)
        return buf.getvalue()


def write_files(directory: Path, datas: Sequence[bytes]) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, data in enumerate(datas):
        path = directory / f"{i:06d}.dcm"
        path.write_bytes(data)
        paths.append(path)
    return paths


def multipart(parts: Sequence[bytes]) -> tuple[bytes, str]:
    boundary = "benchboundary7a1c"
    chunks: list[bytes] = []
    for p in parts:
        chunks += [f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode(), p, b"\r\n"]
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f'multipart/related; type="application/dicom"; boundary={boundary}'


# -- servers ---------------------------------------------------------------------


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    http: str  # DICOMweb root
    dicom_port: int
    ae_title: str
    data_dir: Path
    instances: int = 0
    _peak_rss: int = 0

    def rss_kib(self) -> int:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self._peak_rss = max(self._peak_rss, int(line.split()[1]))
        except OSError:
            pass
        return self._peak_rss

    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.data_dir.rglob("*") if p.is_file())

    def stop(self) -> None:
        self.rss_kib()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_trialpacs(work: Path, max_pdu: int, threads: int) -> Server:
    data = work / "trialpacs"
    data.mkdir()
    http_port, dicom_port = free_port(), free_port()
    env = {
        **os.environ,
        "TRIALPACS_DATA_DIR": str(data),
        "TRIALPACS_DICOM_MAX_PDU": str(max_pdu),
        "TRIALPACS_DICOM_MAX_ASSOCIATIONS": str(threads),
    }
    subprocess.run(
        [sys.executable, "-m", "trialpacs.cli.main", "ae", "add", "STORESCU", "127.0.0.1", "104"],
        env=env,
        check=True,
        capture_output=True,
    )
    log = (work / "trialpacs.log").open("wb")
    proc = subprocess.Popen(
        [
            *[sys.executable, "-m", "trialpacs.cli.main", "serve", "--no-auth"],
            *["--http-port", str(http_port), "--dicom-port", str(dicom_port)],
            *["--log-level", "warning"],
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{http_port}"
    wait_http(base + "/health", proc=proc, timeout=60)
    return Server("trialpacs", proc, base + "/dicomweb", dicom_port, "TRIALPACS", data)


def start_orthanc(work: Path, max_pdu: int, threads: int, http_threads: int) -> Server:
    data = work / "orthanc"
    (data / "storage").mkdir(parents=True)
    http_port, dicom_port = free_port(), free_port()
    config = {
        "Name": "bench",
        "StorageDirectory": str(data / "storage"),
        "IndexDirectory": str(data / "storage"),
        "StorageCompression": False,
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": "ORTHANC",
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "SslEnabled": False,
        "DicomAlwaysAllowStore": True,
        "DicomAlwaysAllowFind": True,
        "DicomAlwaysAllowEcho": True,
        "DicomCheckCalledAet": False,
        "MaximumPduLength": max_pdu,
        "DicomThreadsCount": threads,
        "HttpThreadsCount": http_threads,
        "StorageAccessOnFind": "Never",
        "SaveJobs": False,
        "ConcurrentJobs": 2,
        "HttpCompressionEnabled": False,
        "KeepAlive": True,
        "TcpNoDelay": True,
        "Plugins": [DICOMWEB_PLUGIN],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True},
    }
    conf_dir = work / "orthanc-config"
    conf_dir.mkdir()
    (conf_dir / "orthanc.json").write_text(json.dumps(config, indent=2))
    log = (work / "orthanc.log").open("wb")
    proc = subprocess.Popen(
        [ORTHANC, str(conf_dir) + "/"],
        env={**os.environ, "TCP_NODELAY": "1"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{http_port}"
    wait_http(base + "/system", proc=proc, timeout=60)
    return Server("orthanc", proc, base + "/dicom-web", dicom_port, "ORTHANC", data)


# -- measurements ----------------------------------------------------------------


@dataclass
class Figure:
    label: str
    unit: str
    values: dict[str, float] = field(default_factory=dict)
    higher_is_better: bool = True
    detail: dict[str, str] = field(default_factory=dict)


class Report:
    def __init__(self) -> None:
        self.figures: list[Figure] = []

    def add(
        self,
        label: str,
        unit: str,
        server: str,
        value: float,
        higher_is_better: bool = True,
        detail: str = "",
    ) -> None:
        fig = next((f for f in self.figures if f.label == label), None)
        if fig is None:
            fig = Figure(label, unit, higher_is_better=higher_is_better)
            self.figures.append(fig)
        fig.values[server] = value
        if detail:
            fig.detail[server] = detail
        print(f"  {server:9s} {label}: {value:,.1f} {unit} {detail}", flush=True)

    def table(self) -> str:
        lines = [
            "| figure | unit | trialpacs | Orthanc | trialpacs/Orthanc | better |",
            "|---|---|---:|---:|---:|---|",
        ]
        for f in self.figures:
            ours, theirs = f.values.get("trialpacs"), f.values.get("orthanc")
            ratio = ours / theirs if ours is not None and theirs else float("nan")
            ahead = (ratio >= 1) if f.higher_is_better else (ratio <= 1)
            lines.append(
                f"| {f.label} | {f.unit} | {_fmt(ours)} | {_fmt(theirs)} | {ratio:.2f} | "
                f"{'trialpacs' if ahead else 'Orthanc'} |"
            )
        return "\n".join(lines)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def storescu(server: Server, groups: list[list[Path]], pdu: int) -> float:
    """Wall time for len(groups) parallel storescu processes, one association each."""
    env = {**os.environ, "TCP_NODELAY": "1"}
    cmd = ["storescu", "-R", "-aet", "STORESCU", "-aec", server.ae_title]
    if pdu:
        cmd += ["--max-pdu", str(pdu)]
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [*cmd, "127.0.0.1", str(server.dicom_port), *map(str, files)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for files in groups
    ]
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            raise RuntimeError(f"storescu to {server.name} failed: {err.decode()[-500:]}")
    return time.perf_counter() - start


def stow(server: Server, datas: Sequence[bytes], batch: int, clients: int) -> float:
    bodies = [multipart(datas[i : i + batch]) for i in range(0, len(datas), batch)]
    local = threading.local()

    def client() -> httpx.Client:
        if not hasattr(local, "client"):
            local.client = httpx.Client(timeout=600)
        return local.client  # type: ignore[no-any-return]

    def send(item: tuple[bytes, str]) -> None:
        body, ctype = item
        r = client().post(server.http + "/studies", content=body, headers={"Content-Type": ctype})
        if r.status_code != 200:
            raise RuntimeError(f"STOW to {server.name}: {r.status_code} {r.text[:300]}")

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(send, bodies))
    return time.perf_counter() - start


def timed_get(
    client: httpx.Client,
    url: str,
    params: dict[str, str] | None,
    n: int,
    headers: dict[str, str] | None = None,
) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        r = client.get(url, params=params, headers=headers)
        r.raise_for_status()
        out.append((time.perf_counter() - t) * 1000)
    return out


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


# -- the run ---------------------------------------------------------------------


@dataclass
class Plan:
    cstore_tiny: int
    cstore_ct: int
    stow_tiny: dict[int, int]  # batch -> instances per (server, clients) run
    stow_ct: dict[int, int]
    big_index: int
    queries: int
    frames: int


FULL = Plan(
    cstore_tiny=1200,
    cstore_ct=200,
    stow_tiny={1: 400, 10: 1000, 50: 2000},
    stow_ct={1: 80, 10: 150, 50: 150},
    big_index=25_000,
    queries=40,
    frames=400,
)
QUICK = Plan(
    cstore_tiny=400,
    cstore_ct=60,
    stow_tiny={1: 150, 10: 300, 50: 500},
    stow_ct={1: 30, 10: 50, 50: 50},
    big_index=5_000,
    queries=20,
    frames=100,
)


def both(servers: list[Server], fn: Callable[[Server], None]) -> None:
    for server in servers:
        fn(server)
        server.rss_kib()


def run(args: argparse.Namespace) -> None:
    plan = QUICK if args.quick else FULL
    work = Path(tempfile.mkdtemp(prefix="dimse-bench-"))
    factory = Factory()
    report = Report()
    started = time.perf_counter()
    servers = [
        start_trialpacs(work, args.max_pdu, args.threads),
        start_orthanc(work, args.max_pdu, args.threads, args.http_threads),
    ]
    try:
        _run(plan, args, servers, factory, report, work)
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(
        f"trialpacs vs Orthanc 1.10 + DICOMweb 1.7, PDU {args.max_pdu}, "
        f"{args.threads} DICOM threads, {args.http_threads} HTTP threads, "
        f"{os.cpu_count()} CPUs, {'quick' if args.quick else 'full'} run "
        f"in {(time.perf_counter() - started) / 60:.1f} min"
    )
    print(report.table())


def _run(
    plan: Plan,
    args: argparse.Namespace,
    servers: list[Server],
    factory: Factory,
    report: Report,
    work: Path,
) -> None:
    cstore_only = args.only == "cstore"
    # 1. QIDO at 1,000 instances (the first thing in the index).
    if not cstore_only:
        _load_and_query_1k(servers, factory, report, plan)

    # 2. C-STORE with storescu, 1 and 4 associations.
    _cstore(plan, args, servers, factory, report, work)
    if cstore_only:
        return
    _rest(plan, args, servers, factory, report, work)


def _load_and_query_1k(servers: list[Server], factory: Factory, report: Report, plan: Plan) -> None:
    print("loading 1,000 instances ...", flush=True)
    first = factory.tiny(1000)
    both(servers, lambda s: _load(s, first))
    for server in servers:
        report.add(
            "disk per 2x2 instance @1k (index + files)",
            "KB",
            server.name,
            server.disk_bytes() / server.instances / 1000,
            higher_is_better=False,
        )
    _qido(servers, report, plan, "1k")


def _cstore(
    plan: Plan,
    args: argparse.Namespace,
    servers: list[Server],
    factory: Factory,
    report: Report,
    work: Path,
) -> None:
    for kind, count in (("2x2 MR", plan.cstore_tiny), ("CT 0.5 MB", plan.cstore_ct)):
        for assocs in (1, 4):
            print(f"C-STORE {kind}, {assocs} association(s) ...", flush=True)
            for server in servers:
                datas = factory.ct(count) if kind.startswith("CT") else factory.tiny(count)
                files = write_files(work / "files" / f"{server.name}-{kind[:2]}-{assocs}", datas)
                groups = [files[i::assocs] for i in range(assocs)]
                elapsed = storescu(server, groups, args.max_pdu)
                server.instances += count
                mb = sum(map(len, datas)) / 1e6
                report.add(
                    f"C-STORE {kind}, {assocs} assoc",
                    "inst/s",
                    server.name,
                    count / elapsed,
                    detail=f"({mb / elapsed:.0f} MB/s)",
                )
                shutil.rmtree(files[0].parent)


def _rest(
    plan: Plan,
    args: argparse.Namespace,
    servers: list[Server],
    factory: Factory,
    report: Report,
    work: Path,
) -> None:
    # 3. STOW-RS, batches of 1/10/50 from 1 and 4 clients.
    for kind, sizes in (("2x2 MR", plan.stow_tiny), ("CT 0.5 MB", plan.stow_ct)):
        for batch, count in sizes.items():
            for clients in (1, 4):
                print(f"STOW-RS {kind}, batch {batch}, {clients} client(s) ...", flush=True)
                for server in servers:
                    datas = factory.ct(count) if kind.startswith("CT") else factory.tiny(count)
                    elapsed = stow(server, datas, batch, clients)
                    server.instances += count
                    mb = sum(map(len, datas)) / 1e6
                    report.add(
                        f"STOW-RS {kind}, batch {batch}, {clients} client(s)",
                        "inst/s",
                        server.name,
                        count / elapsed,
                        detail=f"({mb / elapsed:.1f} MB/s)",
                    )

    # 4. A 500-instance CT series for WADO metadata and frames, then top up to the big index.
    print("loading a 500-instance CT series ...", flush=True)
    big_series = factory.ct(500, per_series=500)
    both(servers, lambda s: _load(s, big_series, batch=25))
    missing = max(0, plan.big_index - min(s.instances for s in servers))
    print(f"loading {missing:,} more 2x2 instances (index to {plan.big_index:,}) ...", flush=True)
    for start in range(0, missing, 5000):
        chunk = factory.tiny(min(5000, missing - start))
        both(servers, lambda s, c=chunk: _load(s, c))
    _qido(servers, report, plan, f"{plan.big_index // 1000}k")
    _wado(servers, report, plan, big_series)

    for server in servers:
        report.add("peak RSS", "MiB", server.name, server.rss_kib() / 1024, higher_is_better=False)
        report.add(
            "disk per instance, whole run (index + files)",
            "KB",
            server.name,
            server.disk_bytes() / server.instances / 1000,
            higher_is_better=False,
            detail=f"({server.instances:,} instances)",
        )


def _load(server: Server, datas: Sequence[bytes], batch: int = 50) -> None:
    stow(server, datas, batch, 4)
    server.instances += len(datas)


def _qido(servers: list[Server], report: Report, plan: Plan, size: str) -> None:
    for server in servers:
        with httpx.Client(timeout=60) as client:
            client.get(server.http + "/studies", params=OHIF_STUDY_LIST).raise_for_status()
            study_list = timed_get(client, server.http + "/studies", OHIF_STUDY_LIST, plan.queries)
            studies = client.get(server.http + "/studies", params={"limit": "1"}).json()
            study = studies[0]["0020000D"]["Value"][0]
            url = f"{server.http}/studies/{study}/series"
            client.get(url).raise_for_status()
            series = timed_get(client, url, None, plan.queries)
        for label, values in (("OHIF study list", study_list), ("series of a study", series)):
            report.add(
                f"QIDO {label} @{size}, p50",
                "ms",
                server.name,
                pct(values, 50),
                higher_is_better=False,
            )
            report.add(
                f"QIDO {label} @{size}, p95",
                "ms",
                server.name,
                pct(values, 95),
                higher_is_better=False,
            )


def _wado(servers: list[Server], report: Report, plan: Plan, series: list[bytes]) -> None:
    from pydicom import dcmread

    first = dcmread(DicomBytesIO(series[0]), stop_before_pixels=True)
    study_uid, series_uid = first.StudyInstanceUID, first.SeriesInstanceUID
    sops = [
        dcmread(
            DicomBytesIO(d), stop_before_pixels=True, specific_tags=["SOPInstanceUID"]
        ).SOPInstanceUID
        for d in series[: plan.frames]
    ]
    for server in servers:
        url = f"{server.http}/studies/{study_uid}/series/{series_uid}/metadata"
        with httpx.Client(timeout=120) as client:
            t = time.perf_counter()
            r = client.get(url)
            r.raise_for_status()
            cold = (time.perf_counter() - t) * 1000
            assert len(r.json()) == 500, f"{server.name}: {len(r.json())} instances in metadata"
            warm = timed_get(client, url, None, 5)
        report.add(
            "WADO-RS metadata, 500-instance series, cold",
            "ms",
            server.name,
            cold,
            higher_is_better=False,
        )
        report.add(
            "WADO-RS metadata, 500-instance series, warm p50",
            "ms",
            server.name,
            pct(warm, 50),
            higher_is_better=False,
        )

        base = f"{server.http}/studies/{study_uid}/series/{series_uid}/instances"
        frames, size, elapsed = _frames(base, sops)
        report.add(
            "WADO-RS frames, 4 clients",
            "frames/s",
            server.name,
            frames / elapsed,
            detail=f"({size / elapsed / 1e6:.0f} MB/s)",
        )


def _frames(base: str, sops: list[str]) -> tuple[int, int, float]:
    """Frame 1 of each instance, as stored, from 4 client threads."""
    accept = {"Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=*'}
    local = threading.local()
    total = [0]
    lock = threading.Lock()

    def frame(sop: str) -> None:
        if not hasattr(local, "client"):
            local.client = httpx.Client(timeout=60)
        r = local.client.get(f"{base}/{sop}/frames/1", headers=accept)
        r.raise_for_status()
        with lock:
            total[0] += len(r.content)

    t = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(frame, sops))
    return len(sops), total[0], time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts (~3 min)")
    parser.add_argument("--max-pdu", type=int, default=None, help="max PDU for both servers")
    parser.add_argument("--threads", type=int, default=None, help="DICOM threads/associations")
    parser.add_argument("--http-threads", type=int, default=40, help="Orthanc HTTP threads")
    parser.add_argument(
        "--only", choices=("cstore",), default=None, help="run only this part (C-STORE ingest)"
    )
    args = parser.parse_args()
    from trialpacs.settings import Settings

    defaults = Settings()
    if args.max_pdu is None:
        args.max_pdu = defaults.dicom_max_pdu
    if args.threads is None:
        args.threads = defaults.dicom_max_associations
    for tool in ("storescu", ORTHANC, "unshare", "ip"):
        if shutil.which(tool) is None and not Path(tool).exists():
            raise SystemExit(f"{tool} not found: apt-get install dcmtk orthanc orthanc-dicomweb")
    if os.environ.get(NETNS_FLAG) != "1":
        # Re-run inside a private network namespace with only loopback.
        cmd = [sys.executable, *sys.argv]
        inner = "ip link set lo up && exec " + " ".join(_quote(c) for c in cmd)
        env = {**os.environ, NETNS_FLAG: "1"}
        raise SystemExit(subprocess.call(["unshare", "-n", "--", "sh", "-c", inner], env=env))
    run(args)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


if __name__ == "__main__":
    main()
