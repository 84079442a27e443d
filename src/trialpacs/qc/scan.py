"""Anatomy QC of a folder of DICOM files, outside the server (``trialpacs qc scan``).

The folder is one batch: files are grouped by Series Instance UID, each series
gets the metadata verdict (its own headers, as they are) and an outlier score
within the batch, and the result is ranked most suspicious first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from trialpacs.qc import anatomy, descriptors, features, geometry, outliers
from trialpacs.qc.fusion import QcResult, Thresholds, fuse
from trialpacs.qc.hook import LOCALIZER_REASON, central_indices


@dataclass(frozen=True)
class ScanRow:
    series_uid: str
    folder: str  # common folder of the series' files, relative to the scanned root
    files: int
    modality: str
    stratum: str
    result: QcResult


def _series_files(root: Path) -> dict[str, list[tuple[Path, Dataset]]]:
    groups: dict[str, list[tuple[Path, Dataset]]] = {}
    paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    for path in paths:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError):
            continue
        uid = str(ds.get("SeriesInstanceUID", "")) or str(path)
        groups.setdefault(uid, []).append((path, ds))
    return groups


def scan(
    root: Path,
    expected: Sequence[str],
    *,
    modalities: Sequence[str] = (),
    thresholds: Thresholds | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[ScanRow]:
    """Every series under ``root``, most suspicious first."""
    if not root.exists():
        raise FileNotFoundError(f"{root} does not exist")
    for term in expected:
        anatomy.expected(term)  # a clear error before any work
    t = thresholds or Thresholds()
    groups = _series_files(root)
    if not groups:
        raise ValueError(f"no DICOM files found under {root}")
    found = []
    for n, (uid, items) in enumerate(groups.items(), start=1):
        headers = [ds for _p, ds in items]
        geom = geometry.read(headers)
        evidence = descriptors.read_evidence(headers[0])
        modality = str(headers[0].get("Modality", ""))
        meta = descriptors.assess(
            evidence, geom, expected, modality=modality, expected_modalities=modalities
        )
        stratum = outliers.Stratum(
            modality, geom.plane, outliers.family(headers[0], geom.localizer)
        )
        try:
            picked = [pydicom.dcmread(items[i][0]) for i in central_indices(headers)]
            vector = features.series_features(picked).vector
        except Exception:  # no decodable pixels: the metadata layer alone speaks
            vector = None
        folders = {str(p.parent.relative_to(root)) if root.is_dir() else p.name for p, _ in items}
        found.append((uid, sorted(folders)[0], len(items), modality, stratum, meta, vector))
        if progress is not None:
            progress(n, len(groups))
    vectors = {i: f[6] for i, f in enumerate(found) if f[6] is not None}
    with_pixels = list(vectors)
    scored = outliers.score_batch(
        list(vectors.values()),
        [found[i][4] for i in with_pixels],
        min_stratum=t.min_stratum,
        z_hold=t.z_hold,
        method=t.method,
    )
    by_index = dict(zip(with_pixels, scored, strict=True))
    rows = []
    for i, (uid, folder, count, modality, stratum, meta, _v) in enumerate(found):
        result = fuse(meta, by_index.get(i), t)
        if stratum.family == "localizer" and not t.accept_localizers:
            # As in the pipeline: a scout is not the diagnostic series.
            result = replace(result, status="hold", reasons=(LOCALIZER_REASON, *result.reasons))
        rows.append(ScanRow(uid, folder, count, modality, stratum.key(), result))
    # Flagged series first (a localizer may score low), then the most suspicious.
    return sorted(rows, key=lambda r: (r.result.status != "hold", -r.result.score))
