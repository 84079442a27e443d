"""Request overhead of authentication and the policy check on QIDO and WADO.

One command: ``.venv/bin/python bench/auth_bench.py [--studies 2000] [--rounds 300]``.
Fills an index (SQLite + local files, the embedded default) with published
studies spread over two trials, then starts two ``trialpacs serve`` processes
on the same data: one with ``--no-auth`` (the baseline, no credential and no
filter) and one with authorisation. Each query is timed sequentially over a
kept-alive connection:

* no-auth baseline;
* a service-account API key with a global administrator grant (hash lookup,
  cached, and the published-collection filter);
* a reader of one trial with a signed access token (JWT check, session
  check, and a trial filter in SQL; it sees half the studies).

Queries: OHIF's study list (limit 101 + includefields), a study's series,
study metadata (WADO-RS) and one instance (WADO-RS). It prints medians, p95
and the ratio to the baseline, plus the in-process cost of building the
policy filter.
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
from dicomfactory import make_bytes  # noqa: E402
from support.services import free_port, wait_http  # noqa: E402
from trialpacs.access import users  # noqa: E402
from trialpacs.access.apikeys import create_key  # noqa: E402
from trialpacs.access.policy import Principal, parse_grant  # noqa: E402
from trialpacs.access.visibility import _condition, study_condition  # noqa: E402
from trialpacs.archive import Archive  # noqa: E402
from trialpacs.ingest.store import Placement, store_many  # noqa: E402
from trialpacs.settings import load_settings  # noqa: E402

OHIF_STUDY_LIST = {
    "limit": "101",
    "offset": "0",
    "fuzzymatching": "false",
    "includefield": "00081030,00080060,00080090,00100030",
}
PASSWORD = "amber-falcon-harbour-7"


def fill(data_dir: Path, studies: int) -> list[tuple[str, str, str, str]]:
    """Published studies, alternating trials T1/T2; returns (trial, study, series, sop)."""
    archive = Archive.open(load_settings(None, data_dir=data_dir))
    out: list[tuple[str, str, str, str]] = []
    from pydicom.uid import generate_uid

    batch: dict[str, list[bytes]] = {"T1": [], "T2": []}
    for i in range(studies):
        trial = "T1" if i % 2 == 0 else "T2"
        st, se = generate_uid(), generate_uid()
        for n in (1, 2):
            sop = generate_uid()
            batch[trial].append(
                make_bytes(study=st, series=se, sop=sop, patient_id=f"P{i:05d}", instance_number=n)
            )
        out.append((trial, st, se, sop))
        if len(batch[trial]) >= 200 or i == studies - 1:
            for t, datas in batch.items():
                if datas:
                    where = Placement(collection="published", trial_id=t, site_id="S1")
                    store_many(archive, datas, placement=where)
                    datas.clear()
    users.add_user(archive.db, "bench-reader", password=PASSWORD)
    users.grant(archive.db, "bench-reader", "reader@T1")
    archive.close()
    return out


def serve(data_dir: Path, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "TRIALPACS_DATA_DIR": str(data_dir), "TRIALPACS_DICOM_PORT": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "trialpacs.cli.main", "serve", "--http-port", str(port),
         "--log-level", "warning", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/health", proc=proc)
    return proc, url


def timed(
    client: httpx.Client, requests: dict[str, tuple[str, dict[str, str]]], rounds: int
) -> dict[str, list[float]]:
    """Round-robin over the callers so load and caches affect each the same way."""
    for url, headers in requests.values():
        for _ in range(10):
            client.get(url, headers=headers).raise_for_status()
    times: dict[str, list[float]] = {name: [] for name in requests}
    for _ in range(rounds):
        for name, (url, headers) in requests.items():
            t0 = time.perf_counter()
            r = client.get(url, headers=headers)
            times[name].append((time.perf_counter() - t0) * 1000)
            r.raise_for_status()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="auth-bench-") as tmp:
        data_dir = Path(tmp)
        t0 = time.perf_counter()
        rows = fill(data_dir, args.studies)
        print(f"indexed {args.studies} studies ({2 * args.studies} instances) "
              f"in {time.perf_counter() - t0:.1f}s")  # fmt: skip
        archive = Archive.open(load_settings(None, data_dir=data_dir))
        admin_key = create_key(archive.db, "bench-admin")
        archive.close()
        open_proc, open_url = serve(data_dir, "--no-auth")
        auth_proc, auth_url = serve(data_dir)
        try:
            with httpx.Client(timeout=30) as c:
                login = c.post(
                    auth_url + "/auth/login",
                    json={"username": "bench-reader", "password": PASSWORD},
                )
                login.raise_for_status()
                reader_token = login.json()["access_token"]
            _, study, series, sop = next(r for r in rows if r[0] == "T1")
            base = "/dicomweb/studies"
            queries = {
                "QIDO study list (OHIF)": base + "?" + str(httpx.QueryParams(OHIF_STUDY_LIST)),
                "QIDO series of a study": f"{base}/{study}/series",
                "WADO-RS study metadata": f"{base}/{study}/metadata",
                "WADO-RS one instance": f"{base}/{study}/series/{series}/instances/{sop}",
            }
            callers = {
                "no auth (baseline)": (open_url, {}),
                "admin API key": (auth_url, {"Authorization": f"Bearer {admin_key}"}),
                "reader@T1 access token": (auth_url, {"Authorization": f"Bearer {reader_token}"}),
            }
            accept = {
                "QIDO study list (OHIF)": "application/dicom+json",
                "QIDO series of a study": "application/dicom+json",
                "WADO-RS study metadata": "application/dicom+json",
                "WADO-RS one instance": 'multipart/related; type="application/dicom"',
            }
            print(f"\n{'query':<26} {'caller':<24} {'median ms':>10} {'p95 ms':>8} {'ratio':>6}")
            with httpx.Client(timeout=30) as client:
                for qname, path in queries.items():
                    requests = {
                        cname: (url + path, {**headers, "Accept": accept[qname]})
                        for cname, (url, headers) in callers.items()
                    }
                    results = timed(client, requests, args.rounds)
                    baseline = statistics.median(results["no auth (baseline)"])
                    for cname, t in results.items():
                        med = statistics.median(t)
                        p95 = statistics.quantiles(t, n=20)[-1]
                        print(f"{qname:<26} {cname:<24} {med:>10.2f} {p95:>8.2f} "
                              f"{med / baseline:>6.2f}")  # fmt: skip
            reader = Principal("r", grants=(parse_grant("reader@T1"),))
            n = 20000
            t0 = time.perf_counter()
            for _ in range(n):
                study_condition(reader)
            per = (time.perf_counter() - t0) / n * 1e6
            print(f"\npolicy filter per request (cached by grants): {per:.2f} us")
            t0 = time.perf_counter()
            for _ in range(2000):
                _condition.cache_clear()
                study_condition(reader)
            built = (time.perf_counter() - t0) / 2000 * 1e6
            print(
                f"policy filter built from scratch (first request of a grant set): {built:.0f} us"
            )
        finally:
            for proc in (open_proc, auth_proc):
                proc.terminate()
                proc.wait(15)


if __name__ == "__main__":
    main()
