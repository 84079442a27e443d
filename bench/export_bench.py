"""Export benchmark: a 1,000-series cohort from the published archive to a package.

One command: ``.venv/bin/python bench/export_bench.py [--series 1000] [--instances 4]
[--size 128] [--nifti] [--s3]``.

Builds a trial archive in a temporary directory (SQLite + local files, the
embedded default) and stores ``--series`` small synthetic MR series
(``--instances`` slices of ``--size``x``--size`` 16-bit pixels each, with
geometry, spread over 2 sites, 50 subjects and 2 visits) through the real
ingest path (``store_many`` into the published collection). Then saves a
cohort of the whole trial and exports it as a data manager:

* to a local directory (the package: DICOM, manifests, datasheet, README,
  checksums); with ``--nifti`` also NIfTI volumes via dcm2niix;
* again to the same directory (the resume path: every file is already there);
* with ``--s3``, to a bucket on moto in server mode (uploads over loopback).

Prints series/s and MB/s (DICOM bytes exported per second) for each run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from dicomfactory import make_dataset, to_bytes  # noqa: E402
from support.services import moto_s3  # noqa: E402
from trialpacs.access.policy import Principal, parse_grant  # noqa: E402
from trialpacs.archive import Archive  # noqa: E402
from trialpacs.config import apply, load_text  # noqa: E402
from trialpacs.exports.cohort import CohortDefinition  # noqa: E402
from trialpacs.exports.job import ExportOptions, ExportResult, run_export  # noqa: E402
from trialpacs.exports.saved import save_cohort  # noqa: E402
from trialpacs.ingest.store import Placement, StoreOutcome, store_many  # noqa: E402
from trialpacs.settings import load_settings  # noqa: E402

CONFIG = """\
version: 1
regions: [{{id: eu}}]
storage_backends:
  - {{name: q-eu, kind: local, path: {tmp}/q-eu, region: eu, purpose: identified}}
{extra}
sites:
  - {{id: S1, name: One, region: eu, identified_backend: q-eu}}
  - {{id: S2, name: Two, region: eu, identified_backend: q-eu}}
trials:
  - id: BENCH
    name: Export benchmark
    profile: trial
    deid_regions: [local, eu]
    timepoints: [{{id: BL}}, {{id: W12}}]
    sites: [{{site: S1}}, {{site: S2}}]
"""
S3_BACKEND = """\
  - {{name: exports, kind: s3, region: eu, purpose: deidentified, bucket: exports,
      endpoint_url: "{url}", s3_region: us-east-1}}
"""


def series_bytes(n: int, instances: int, size: int) -> tuple[str, list[bytes]]:
    subject = f"S{1 + n % 2}-{n % 50:04d}"
    visit, date = ("BL", "20240102") if (n // 50) % 2 == 0 else ("W12", "20240326")
    study = f"1.2.826.0.1.3680043.10.543.{n % 100}.{(n // 50) % 2}"
    series = f"1.2.826.0.1.3680043.10.543.{n % 100}.{(n // 50) % 2}.{n}"
    out = []
    for i in range(instances):
        ds = make_dataset(study=study, series=series, patient_id=subject, patient_name=subject,
                          rows=size, cols=size, study_date=date, series_description="T1 AX",
                          instance_number=i + 1, value=n)  # fmt: skip
        ds.SeriesNumber = n
        ds.BodyPartExamined = "BRAIN"
        ds.ClinicalTrialTimePointID = visit
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0.0, 0.0, 3.0 * i]
        ds.PixelSpacing = [1.0, 1.0]
        ds.SliceThickness = 3.0
        rng = np.random.default_rng(n * 1000 + i)
        ds.PixelData = rng.integers(0, 4096, size * size, dtype=np.uint16).tobytes()
        out.append(to_bytes(ds))
    return f"S{1 + n % 2}", out


def ingest(archive: Archive, n_series: int, instances: int, size: int) -> float:
    started = time.perf_counter()
    for n in range(n_series):
        site, datas = series_bytes(n, instances, size)
        for out in store_many(archive, datas, placement=Placement("published", "BENCH", site)):
            assert isinstance(out, StoreOutcome), out
    return time.perf_counter() - started


@contextlib.contextmanager
def maybe_s3(enabled: bool) -> Iterator[str | None]:
    if not enabled:
        yield None
        return
    with moto_s3() as env:
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
            os.environ[key] = env[key]
        import boto3

        url = env["TRIALPACS_S3_ENDPOINT_URL"]
        boto3.client("s3", endpoint_url=url, region_name="us-east-1").create_bucket(
            Bucket="exports"
        )
        yield url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--instances", type=int, default=4)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--nifti", action="store_true", help="also convert to NIfTI")
    parser.add_argument("--s3", action="store_true", help="also export to S3 (moto server)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tp-export-bench-") as tmp, maybe_s3(args.s3) as url:
        root = Path(tmp)
        extra = S3_BACKEND.format(url=url) if url else ""
        archive = Archive.open(load_settings(None, data_dir=root / "data", audit_enabled=True))
        apply(archive, load_text(CONFIG.format(tmp=root, extra=extra)))
        seconds = ingest(archive, args.series, args.instances, args.size)
        print(f"ingest: {args.series} series x {args.instances} instances in {seconds:.1f} s")
        dm = Principal("bench", grants=(parse_grant("data_manager@BENCH"),))
        ref = save_cohort(archive.db, "bench", CohortDefinition("BENCH"), "bench").ref
        runs: list[tuple[str, ExportResult]] = []
        out = root / "package"
        runs.append(("local directory", run_export(archive, dm, ref, str(out))))
        runs.append(("local, resumed (all present)", run_export(archive, dm, ref, str(out))))
        if args.nifti:
            nifti = ExportOptions(nifti=True)
            runs.append(("local + NIfTI", run_export(archive, dm, ref, str(root / "n"), nifti)))
        if url:
            runs.append(("S3 (moto, loopback)", run_export(archive, dm, ref, "s3://exports/b")))
        archive.close()
    print()
    print("| destination | series | instances | MB | seconds | series/s | MB/s |")
    print("|---|---|---|---|---|---|---|")
    for label, r in runs:
        mb = r.bytes / 1e6
        print(
            f"| {label} | {r.series} | {r.instances} | {mb:.1f} | {r.seconds:.1f} | "
            f"{r.series / r.seconds:.0f} | {mb / r.seconds:.1f} |"
        )


if __name__ == "__main__":
    main()
