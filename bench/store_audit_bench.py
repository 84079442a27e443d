"""Cost of auditing stores: one-instance and batch stores with the trail on and off.

One command::

    .venv/bin/python bench/store_audit_bench.py [--instances 300] [--batch 50] [--rounds 3]

In-process, SQLite + local files in a temporary directory, 2x2 MR instances
(index-bound, so the audit append is as visible as it can be). Store entries
are appended in the index transaction of the instances (trialpacs.audit.stores),
so the cost is one head update and one insert per (caller, study) per commit,
no extra fsync. Rounds alternate on/off; medians per instance are printed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from pydicom.uid import generate_uid

from dicomfactory import make_bytes
from trialpacs.archive import Archive
from trialpacs.audit.chain import AuditEvent
from trialpacs.ingest.store import store_many
from trialpacs.settings import load_settings


def _run(audit: bool, instances: int, batch: int) -> tuple[float, float, float]:
    """ms per instance: lone, batches of one study, batches of distinct studies."""
    with tempfile.TemporaryDirectory() as tmp:
        arch = Archive.open(load_settings(None, data_dir=Path(tmp), audit_enabled=audit))
        try:
            template = AuditEvent(action="store.bench", actor="bench")
            lone = [make_bytes() for _ in range(instances)]
            start = time.perf_counter()
            for data in lone:
                store_many(arch, [data], audit=template)
            one = (time.perf_counter() - start) * 1000 / instances
            st, se = generate_uid(), generate_uid()
            one_study = [make_bytes(study=st, series=se) for _ in range(instances)]
            mixed = [make_bytes() for _ in range(instances)]
            timings = [one]
            for datas in (one_study, mixed):
                start = time.perf_counter()
                for i in range(0, instances, batch):
                    store_many(arch, datas[i : i + batch], audit=template)
                timings.append((time.perf_counter() - start) * 1000 / instances)
            return tuple(timings)  # type: ignore[return-value]
        finally:
            arch.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=300)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[bool, list[tuple[float, float, float]]] = {True: [], False: []}
    for _ in range(args.rounds):
        for audit in (False, True):
            results[audit].append(_run(audit, args.instances, args.batch))
    print(f"{'store':<34}{'audit off':>12}{'audit on':>12}{'ratio':>8}")
    labels = (
        "one instance per request",
        f"batches of {args.batch}, one study",
        f"batches of {args.batch}, {args.batch} studies",
    )
    for i, label in enumerate(labels):
        off = statistics.median(r[i] for r in results[False])
        on = statistics.median(r[i] for r in results[True])
        print(f"{label:<34}{off:>9.2f} ms{on:>9.2f} ms{on / off:>8.2f}")
    print("(median ms per instance)")


if __name__ == "__main__":
    main()
