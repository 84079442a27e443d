"""Pipeline benchmark: a 500-instance study from storescu to publication, on each executor.

One command: ``.venv/bin/python bench/pipeline_bench.py [--instances 500] [--series 1]``.
For each executor (embedded worker pool; Celery workers on Redis at
127.0.0.1:6379) it starts ``trialpacs serve`` on loopback in a temporary
directory, applies a one-trial configuration, sends a study of synthetic
512x512 16-bit CT instances (about 0.5 MB each, with patient identifiers)
to the trial-and-site AE title with dcmtk's storescu, and measures

* end-to-end latency: storescu returned (last instance acknowledged, i.e.
  durable and indexed) -> every instance of the de-identified study visible
  over QIDO-RS; reported with and without the settle interval that decides a
  series is complete (``--settle``, 1 s here; storage commitment skips it);
* pipeline throughput: instances / (latency - settle), i.e. de-identify,
  verify, QC and publish per second.

A study in one series is one job (one worker); ``--series N`` splits it so
N workers share it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from dicomfactory import make_dataset, to_bytes  # noqa: E402
from support.services import LiveServer, live_server, trialpacs_cmd  # noqa: E402
from trials.support import config_yaml  # noqa: E402


def write_study(folder: Path, n: int, series: int) -> None:
    folder.mkdir(parents=True)
    first = make_dataset(patient_name="SMITH^JOHN", patient_id="MRN12345", modality="CT")
    study = str(first.StudyInstanceUID)
    series_uids = [str(first.SeriesInstanceUID)] + [
        str(make_dataset().SeriesInstanceUID) for _ in range(series - 1)
    ]
    for i in range(n):
        ds = make_dataset(
            study=study,
            series=series_uids[i % series],
            instance_number=i + 1,
            patient_name="SMITH^JOHN",
            patient_id="MRN12345",
            modality="CT",
            rows=512,
            cols=512,
            value=i,
        )
        ds.ClinicalTrialTimePointID = "BL"  # the site sends the visit in the data
        (folder / f"{i:05d}.dcm").write_bytes(to_bytes(ds))


def published(server: LiveServer) -> int:
    h = {**server.headers(), "Accept": "application/dicom+json"}
    res = httpx.get(server.dicomweb + "/instances", headers=h, timeout=30)
    res.raise_for_status()
    return len(res.json())


@contextlib.contextmanager
def celery_worker(env: dict[str, str], log: Path, concurrency: int) -> Iterator[None]:
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [*trialpacs_cmd(), "worker", "--concurrency", str(concurrency)],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    try:
        time.sleep(3)  # worker start-up is not part of the measurement
        yield
    finally:
        proc.terminate()
        proc.wait(30)


def run(
    executor: str, n: int, series: int, settle: float, workers: int, tmp: Path, timeout: float
) -> dict:
    data_dir = tmp / executor / "data"
    data_dir.mkdir(parents=True)
    env = {
        "TRIALPACS_PIPELINE_EXECUTOR": executor,
        "TRIALPACS_PIPELINE_WORKERS": str(workers),
        "TRIALPACS_SERIES_SETTLE_SECONDS": str(settle),
        "TRIALPACS_DEID_SECRET": "bench-secret",
        "TRIALPACS_CELERY_QUEUE": f"trialpacs-bench-{uuid.uuid4().hex[:8]}",
    }
    cfg = data_dir / "trials.yaml"
    # The trial expects what is sent (CT, no declared anatomy: the default
    # anatomy QC passes it), so every series is published, not held.
    text = config_yaml(data_dir).replace("modalities: [MR], anatomy: [KNEE]", "modalities: [CT]")
    cfg.write_text(text)
    full = {**os.environ, "TRIALPACS_DATA_DIR": str(data_dir), **env}
    subprocess.run([*trialpacs_cmd(), "apply", str(cfg)], env=full, check=True, capture_output=True)
    folder = tmp / executor / "in"
    write_study(folder, n, series)
    with live_server(data_dir, env, dicom=True) as server:
        worker: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
        if executor == "celery":
            worker = celery_worker(server.env, tmp / executor / "worker.log", workers)
        with worker:
            t0 = time.monotonic()
            subprocess.run(
                [
                    "storescu",
                    "-aet",
                    "PACS_S01",
                    "-aec",
                    "ONCO1_S01",
                    "+sd",
                    "127.0.0.1",
                    str(server.dicom_port),
                    str(folder),
                ],
                check=True,
                capture_output=True,
            )
            t_received = time.monotonic()
            while published(server) < n:
                if time.monotonic() - t_received > timeout:
                    state = subprocess.run(
                        [*trialpacs_cmd(), "status"], env=server.env, capture_output=True, text=True
                    )
                    why = f"{executor}: not published in {timeout:.0f} s\n{state.stdout}"
                    raise SystemExit(why)
                time.sleep(0.05)
            t_published = time.monotonic()
    latency = t_published - t_received
    work = max(latency - settle, 1e-9)
    return {
        "executor": executor,
        "instances": n,
        "series": series,
        "workers": workers,
        "send_seconds": round(t_received - t0, 2),
        "latency_seconds": round(latency, 2),
        "latency_minus_settle_seconds": round(work, 2),
        "throughput_instances_per_s": round(n / work, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--instances", type=int, default=500)
    parser.add_argument("--series", type=int, default=1)
    parser.add_argument("--settle", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--executors", default="embedded,celery")
    parser.add_argument(
        "--timeout", type=float, default=600, help="Give up (and print status) after this."
    )
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="pipeline-bench-") as tmp:
        for executor in args.executors.split(","):
            result = run(
                executor,
                args.instances,
                args.series,
                args.settle,
                args.workers,
                Path(tmp),
                args.timeout,
            )
            results.append(result)
            print(json.dumps(result), flush=True)
    print()
    print(
        f"{'executor':10} {'inst':>5} {'series':>6} {'send s':>7} {'latency s':>10} "
        f"{'- settle':>9} {'inst/s':>7}"
    )
    for r in results:
        print(
            f"{r['executor']:10} {r['instances']:>5} {r['series']:>6} {r['send_seconds']:>7} "
            f"{r['latency_seconds']:>10} {r['latency_minus_settle_seconds']:>9} "
            f"{r['throughput_instances_per_s']:>7}"
        )


if __name__ == "__main__":
    main()
