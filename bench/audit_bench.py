"""Request cost of the audit trail on QIDO and WADO.

One command: ``.venv/bin/python bench/audit_bench.py [--studies 2000] [--rounds 300]``.
Fills an index (SQLite + local files) like ``auth_bench.py``, then starts two
``trialpacs serve`` processes on the same data, both with authorisation and
an administrator API key: one with ``TRIALPACS_AUDIT_ENABLED=false`` (the
baseline) and one with auditing on (one hash-chained entry, committed with a
synchronous=FULL SQLite transaction, per request). Requests are interleaved
over kept-alive connections; medians, p95 and the ratio are printed, and the
chain is verified at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))
from auth_bench import OHIF_STUDY_LIST, fill, timed  # noqa: E402

from support.services import free_port, wait_http  # noqa: E402
from trialpacs.access.apikeys import create_key  # noqa: E402
from trialpacs.archive import Archive  # noqa: E402
from trialpacs.audit import verify  # noqa: E402
from trialpacs.settings import load_settings  # noqa: E402


def serve(data_dir: Path, audit: bool) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "TRIALPACS_DATA_DIR": str(data_dir),
        "TRIALPACS_DICOM_PORT": "0",
        "TRIALPACS_AUDIT_ENABLED": "true" if audit else "false",
        "TRIALPACS_PIPELINE_EXECUTOR": "off",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "trialpacs.cli.main", "serve", "--http-port", str(port),
         "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/health", proc=proc)
    return proc, url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="audit-bench-") as tmp:
        data_dir = Path(tmp)
        rows = fill(data_dir, args.studies)
        archive = Archive.open(load_settings(None, data_dir=data_dir))
        key = create_key(archive.db, "bench-admin")
        off_proc, off_url = serve(data_dir, audit=False)
        on_proc, on_url = serve(data_dir, audit=True)
        try:
            _, study, series, sop = rows[0]
            base = "/dicomweb/studies"
            queries = {
                "QIDO study list (OHIF)": (
                    base + "?" + str(httpx.QueryParams(OHIF_STUDY_LIST)),
                    "application/dicom+json",
                ),
                "QIDO series of a study": (f"{base}/{study}/series", "application/dicom+json"),
                "WADO-RS study metadata": (f"{base}/{study}/metadata", "application/dicom+json"),
                "WADO-RS one instance": (
                    f"{base}/{study}/series/{series}/instances/{sop}",
                    'multipart/related; type="application/dicom"',
                ),
            }
            auth = {"Authorization": f"Bearer {key}"}
            print(f"{'query':<26} {'audit':<5} {'median ms':>10} {'p95 ms':>8} {'ratio':>6}")
            with httpx.Client(timeout=30) as client:
                for qname, (path, accept) in queries.items():
                    headers = {**auth, "Accept": accept}
                    requests = {
                        "off": (off_url + path, headers),
                        "on": (on_url + path, headers),
                    }
                    results = timed(client, requests, args.rounds)
                    baseline = statistics.median(results["off"])
                    for name, t in results.items():
                        med = statistics.median(t)
                        p95 = statistics.quantiles(t, n=20)[-1]
                        print(f"{qname:<26} {name:<5} {med:>10.2f} {p95:>8.2f} "
                              f"{med / baseline:>6.2f}")  # fmt: skip
            t0 = time.perf_counter()
            result = verify(archive.db)
            took = time.perf_counter() - t0
            print(f"\naudit verify: {result.entries} entries, ok={result.ok}, {took:.2f}s")
        finally:
            for proc in (off_proc, on_proc):
                proc.terminate()
                proc.wait(15)
            archive.close()


if __name__ == "__main__":
    main()
