"""Seeded variants of real series, for the evaluation and the tests.

There are few real series of each anatomy in the test corpus (one shoulder,
one knee), so batches are built from augmentations of them: crops, small
rotations, flips, resampling, a bias field, contrast (gamma) changes and noise,
with a synthetic stack of slightly shifted slices when the source is a single
image. Hard negatives are the same anatomy with another contrast (a
non-monotonic intensity mapping, T2-like TR/TE) or as a localizer (coarse
matrix, wider field of view, LOCALIZER image type). Everything here is an
augmentation of a few real acquisitions, and results measured on it say so.
"""

from __future__ import annotations

import copy
import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import pydicom
from numpy.typing import NDArray
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from trialpacs.qc.features import central_slices
from trialpacs.qc.geometry import _floats, _functional

HEADER_KEYS = (
    "Modality", "BodyPartExamined", "StudyDescription", "SeriesDescription", "ProtocolName",
    "ReceiveCoilName", "RequestedProcedureDescription", "ImageOrientationPatient",
    "SliceThickness", "RepetitionTime", "EchoTime", "ScanningSequence", "SequenceName",
    "ImageType", "Laterality", "Manufacturer", "SOPClassUID",
)  # fmt: skip
DESCRIPTORS = (
    "BodyPartExamined", "StudyDescription", "SeriesDescription", "ProtocolName",
    "ReceiveCoilName", "RequestedProcedureDescription",
)  # fmt: skip
Kind = Literal["plain", "contrast", "localizer"]


@dataclass(frozen=True)
class Source:
    """One real series of the corpus: its slices as float images and its header."""

    name: str
    anatomy: str
    header: Dataset
    slices: list[NDArray[Any]]
    spacing: tuple[float, float] | None


def load_sources(testdata: Path) -> list[Source]:
    """Every series listed in ``index.csv``, grouped by Series Instance UID."""
    index = testdata / "index.csv"
    if not index.is_file():
        raise FileNotFoundError(f"{index} not found: set TRIALPACS_TESTDATA to the test corpus")
    groups: dict[str, list[dict[str, str]]] = {}
    with index.open(newline="") as fh:
        for row in csv.DictReader(fh):
            groups.setdefault(row["series_uid"], []).append(row)
    sources = []
    for rows in groups.values():
        datasets = [pydicom.dcmread(testdata / r["path"]) for r in rows]
        first = datasets[0]
        slices = central_slices(datasets, count=len(datasets) if len(datasets) > 1 else 5)
        spacing = _floats(_functional(first, "PixelSpacing") or first.get("ImagerPixelSpacing"))
        # Work at most at 512 pixels: augmenting 2k radiographs would dominate the run time.
        factor = max(slices[0].shape) / 512
        if factor > 1:
            size = (round(slices[0].shape[1] / factor), round(slices[0].shape[0] / factor))
            slices = [cv2.resize(s, size, interpolation=cv2.INTER_AREA) for s in slices]
            spacing = [v * factor for v in spacing]
        header = Dataset()
        for key in HEADER_KEYS:
            if key in first:
                header[key] = first[key]
        folder = rows[0]["path"].split("/")[0]
        name = folder if len(rows) > 1 else rows[0]["path"]
        sources.append(
            Source(
                name,
                rows[0]["anatomy"],
                header,
                slices,
                (spacing[0], spacing[1]) if len(spacing) == 2 else None,
            )
        )
    return sorted(sources, key=lambda s: s.name)


def _augment(
    img: NDArray[Any], rng: np.random.Generator, kind: Kind
) -> tuple[NDArray[Any], float, float]:
    """One augmented slice, and the factor by which pixel spacing grew (y, x)."""
    h, w = img.shape
    lo, hi = np.percentile(img[::4, ::4], (0.5, 99.5))
    norm = np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1).astype(np.float32)
    fy, fx = rng.uniform(0.8, 1.0, 2)
    ch, cw = int(h * fy), int(w * fx)
    y0, x0 = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    out = norm[y0 : y0 + ch, x0 : x0 + cw]
    angle = rng.uniform(-8, 8)
    m = cv2.getRotationMatrix2D((cw / 2, ch / 2), angle, 1.0)
    out = cv2.warpAffine(out, m, (cw, ch), flags=cv2.INTER_LINEAR, borderValue=0.0)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    yy, xx = np.mgrid[0:ch, 0:cw].astype(np.float32)
    a, b = rng.uniform(-0.3, 0.3, 2)
    out = out * (1 + a * (xx / cw - 0.5) + b * (yy / ch - 0.5))
    out = np.asarray(np.clip(out, 0, None) ** rng.uniform(0.75, 1.33), np.float32)
    scale = rng.uniform(0.5, 1.0) if max(ch, cw) > 128 else 1.0
    if kind == "contrast":
        out = np.sin(np.pi * np.clip(out, 0, 1) * 0.85) ** 2
    if kind == "localizer":
        scale = min(scale, 128 / max(ch, cw))
        pad = int(max(ch, cw) * 0.15)
        out = cv2.copyMakeBorder(out, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0.0)
    nh, nw = max(16, round(out.shape[0] * scale)), max(16, round(out.shape[1] * scale))
    sy, sx = out.shape[0] / nh, out.shape[1] / nw
    out = cv2.resize(np.ascontiguousarray(out), (nw, nh), interpolation=cv2.INTER_AREA)
    sigma = rng.uniform(0.0, 0.03) + (0.05 if kind == "localizer" else 0.0)
    out = out + np.asarray(rng.normal(0, sigma, out.shape), np.float32)
    return np.clip(out, 0, 1.2).astype(np.float32), sy, sx


def variant(
    source: Source, rng: np.random.Generator, kind: Kind = "plain", slices: int = 3
) -> list[Dataset]:
    """A new series (``slices`` instances) derived from ``source``."""
    n = len(source.slices)
    start = int(rng.integers(0, max(1, n - slices + 1)))
    picks = [source.slices[min(n - 1, start + i)] for i in range(slices)]
    seed = int(rng.integers(0, 2**31))
    study, series = generate_uid(), generate_uid()
    thickness = 8.0 if kind == "localizer" else float(source.header.get("SliceThickness", 5) or 5)
    out = []
    done: dict[int, tuple[NDArray[Any], float, float]] = {}
    for i, base in enumerate(picks):
        # Same augmentation for the whole stack, a small shift and fresh noise per slice.
        if id(base) not in done:
            done[id(base)] = _augment(base, np.random.default_rng(seed), kind)
        img, sy, sx = done[id(base)]
        shift = np.array([[1, 0, rng.uniform(-3, 3)], [0, 1, rng.uniform(-3, 3)]], np.float32)
        img = cv2.warpAffine(img, shift, (img.shape[1], img.shape[0]), borderValue=0.0)
        img = np.clip(img + np.asarray(rng.normal(0, 0.01, img.shape), np.float32), 0, 1.2)
        out.append(_dataset(source, img, sy, sx, study, series, i, thickness, kind))
    return out


def _dataset(
    source: Source,
    img: NDArray[Any],
    sy: float,
    sx: float,
    study: str,
    series: str,
    index: int,
    thickness: float,
    kind: Kind,
) -> Dataset:
    ds = Dataset()
    for key in HEADER_KEYS:
        if key in source.header:
            ds[key] = copy.deepcopy(source.header[key])
    ds.SOPClassUID = MRImageStorage if ds.get("Modality") == "MR" else ds.get("SOPClassUID")
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.PatientName, ds.PatientID = "SYNTHETIC^PATIENT", "SYN001"
    ds.InstanceNumber = index + 1
    if source.spacing is not None:
        ds.PixelSpacing = [round(source.spacing[0] * sy, 6), round(source.spacing[1] * sx, 6)]
    if "ImageOrientationPatient" not in ds:
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    iop = [float(v) for v in ds.ImageOrientationPatient]
    normal = np.cross(iop[:3], iop[3:])
    ds.ImagePositionPatient = [round(float(v) * index * thickness, 3) for v in normal]
    ds.SliceThickness = thickness
    if kind == "contrast":
        ds.RepetitionTime, ds.EchoTime = 3500, 90
        ds.SeriesDescription = _relabel(source, "T2 FSE")
        ds.ProtocolName = _relabel(source, "T2")
    elif kind == "localizer":
        ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
        ds.SeriesDescription = _relabel(source, "LOCALIZER")
        ds.RepetitionTime, ds.EchoTime = 8, 3
    pixels = np.clip(img * 3000, 0, 4095).astype(np.uint16)
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = pixels.tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def _relabel(source: Source, sequence: str) -> str:
    """A hard negative keeps its anatomy words and gets another sequence name."""
    words = " ".join(str(source.header.get(k, "") or "") for k in ("StudyDescription",))
    return f"{sequence} {words}".strip()[:64]


def corrupt(
    header: Dataset, rng: np.random.Generator, donors: Sequence[Dataset], mode: str
) -> Dataset:
    """``header`` with blanked or swapped anatomy descriptors.

    A new dataset that shares its elements with ``header`` and the donor (cheap
    enough for thousands of draws): read it, do not change it.
    """
    ds = Dataset()
    for elem in header:
        if elem.keyword != "PixelData":
            ds[elem.tag] = elem
    if mode == "blank":
        for key in DESCRIPTORS:
            if key in ds:
                del ds[key]
    elif mode == "swap":
        donor = donors[int(rng.integers(0, len(donors)))]
        for key in DESCRIPTORS:
            if key in ds:
                del ds[key]
            if key in donor:
                ds[key] = donor[key]
    return ds


def round_robin(n: int, k: int) -> list[int]:
    """``k`` indices spread evenly over ``range(n)`` (for picking varied sources)."""
    return [math.floor(i * n / k) % n for i in range(k)]
