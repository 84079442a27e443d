"""Header de-identification throughput: trialpacs vs dicognito, same files, same run.

    .venv/bin/python bench/deid_bench.py [--count 100] [--repeat 3]

Generates benchmark data with pydicom (copies of the shared CT1_UNC.dcm with
new UIDs and patients, plus tiny 2x2 MR instances), then for each data set
measures, single-threaded, file in -> de-identified file out:

- trialpacs: ``Deidentifier.deidentify_bytes`` with the ``trial`` profile (the
  full Table E.1-1 plus options, free-text cleaning, key vault recording);
- dicognito 0.19.0 in-process (``Anonymizer().anonymize`` + ``save_as``);
- the floor: pydicom ``dcmread`` + ``save_as`` without any change.

Prints files/s (median of ``--repeat`` runs) and the trialpacs/dicognito ratio.
Absolute numbers drift on shared machines; the ratio is the figure to read.

``--with-pixel-cleaner`` attaches the OCR cleaner as ``trialpacs deid`` does
(these CT/MR instances are not OCR-scanned; what is measured is the cleaner's
per-instance cost of deciding that, on top of the header work).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from trialpacs.deid import Deidentifier, TrialContext, load_profile  # noqa: E402
from trialpacs.deid.vault import KeyVault  # noqa: E402

CT_SOURCE = (
    Path(os.environ.get("TRIALPACS_TESTDATA", REPO.parent / "shared" / "testdata"))
    / "ct"
    / "CT1_UNC.dcm"
)


def make_ct(folder: Path, count: int) -> list[Path]:
    base = dcmread(CT_SOURCE)
    study = generate_uid()
    series = generate_uid()
    out = []
    for i in range(count):
        if i % 25 == 0:
            study, series = generate_uid(), generate_uid()
        base.SOPInstanceUID = generate_uid()
        base.file_meta.MediaStorageSOPInstanceUID = base.SOPInstanceUID
        base.StudyInstanceUID = study
        base.SeriesInstanceUID = series
        base.PatientID = f"MRN{1000 + i // 25}"
        base.PatientName = f"DOE^JOHN{i // 25}"
        path = folder / f"ct_{i:05d}.dcm"
        base.save_as(path)
        out.append(path)
    return out


def make_mr(folder: Path, count: int) -> list[Path]:
    out = []
    study, series = generate_uid(), generate_uid()
    for i in range(count):
        ds = Dataset()
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
        ds.SOPInstanceUID = generate_uid()
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series
        ds.FrameOfReferenceUID = series[:-2] + ".9"
        ds.PatientName = "HARTWELL^JANE^Q"
        ds.PatientID = "MRN77"
        ds.PatientBirthDate = "19700304"
        ds.PatientSex = "F"
        ds.StudyDate = "20240102"
        ds.StudyTime = "101500"
        ds.AccessionNumber = "ACC1"
        ds.InstitutionName = "St. Mary Hospital"
        ds.ReferringPhysicianName = "HOUSE^GREGORY"
        ds.StudyDescription = "MRI RIGHT KNEE"
        ds.SeriesDescription = "SAG PD FS"
        ds.Modality = "MR"
        ds.InstanceNumber = i + 1
        ds.Rows = ds.Columns = 2
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.PixelData = np.arange(4, dtype="<u2").tobytes()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta = meta
        path = folder / f"mr_{i:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        out.append(path)
    return out


PIXEL_CLEANER = False


def run_trialpacs(files: list[Path], out: Path, work: Path) -> float:
    secret = b"benchmark-secret-0123456789"
    vault = KeyVault(work / f"vault-{time.monotonic_ns()}.sqlite", secret)
    cleaner = None
    if PIXEL_CLEANER:
        from trialpacs.deid.pixels import default_cleaner

        cleaner = default_cleaner()
    deid = Deidentifier(
        load_profile("trial"), secret, TrialContext("BENCH", "S01"), vault, pixel_cleaner=cleaner
    )
    deid.deidentify_bytes(files[0].read_bytes())  # warm-up (imports), untimed
    t = time.perf_counter()
    for i, f in enumerate(files):
        (out / f"{i}.dcm").write_bytes(deid.deidentify_bytes(f.read_bytes()))
    vault.close()
    return len(files) / (time.perf_counter() - t)


def run_dicognito(files: list[Path], out: Path, work: Path) -> float:
    from dicognito.anonymizer import Anonymizer

    anonymizer = Anonymizer()
    anonymizer.anonymize(dcmread(files[0]))  # warm-up, untimed
    t = time.perf_counter()
    for i, f in enumerate(files):
        ds = dcmread(f)
        anonymizer.anonymize(ds)
        ds.save_as(out / f"{i}.dcm")
    return len(files) / (time.perf_counter() - t)


def run_floor(files: list[Path], out: Path, work: Path) -> float:
    t = time.perf_counter()
    for i, f in enumerate(files):
        ds = dcmread(io.BytesIO(f.read_bytes()))
        ds.save_as(out / f"{i}.dcm")
    return len(files) / (time.perf_counter() - t)


def measure_all(
    fns: list[Callable[[list[Path], Path, Path], float]], files: list[Path], work: Path, repeat: int
) -> list[float]:
    """Median files/s per tool; runs are interleaved so load drift hits all tools alike."""
    rates: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            out = Path(tempfile.mkdtemp(prefix=f"out-{fn.__name__}-", dir=work))
            rates[i].append(fn(files, out, work))
            shutil.rmtree(out)
    return [statistics.median(r) for r in rates]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--count", type=int, default=100, help="files per data set")
    ap.add_argument("--repeat", type=int, default=5, help="runs per measurement (median)")
    ap.add_argument(
        "--with-pixel-cleaner", action="store_true", help="attach the OCR cleaner (as the CLI)"
    )
    args = ap.parse_args()
    global PIXEL_CLEANER
    PIXEL_CLEANER = args.with_pixel_cleaner
    if not CT_SOURCE.is_file():
        print(f"missing {CT_SOURCE}: set TRIALPACS_TESTDATA", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="deid-bench-") as tmp:
        work = Path(tmp)
        (work / "ct").mkdir()
        (work / "mr").mkdir()
        sets = {
            "0.5 MB CT": make_ct(work / "ct", args.count),
            "2x2 MR": make_mr(work / "mr", args.count),
        }
        print(f"{args.count} files per set, median of {args.repeat} runs, single thread\n")
        print(f"{'data set':<10} {'trialpacs':>12} {'dicognito':>12} {'floor':>12} {'ratio':>7}")
        worst = float("inf")
        for name, files in sets.items():
            ours, theirs, floor = measure_all(
                [run_trialpacs, run_dicognito, run_floor], files, work, args.repeat
            )
            ratio = ours / theirs
            worst = min(worst, ratio)
            print(
                f"{name:<10} {ours:>8.0f} f/s {theirs:>8.0f} f/s {floor:>8.0f} f/s {ratio:>6.2f}x"
            )
        verdict = "met" if worst >= 2 else "NOT met"
        print(f"\ngoal >= 2.00x dicognito: {verdict} (worst {worst:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
