"""Outlier scores of series features within a trial's batch.

Series are compared only with series of the same kind (stratum: modality,
plane, sequence family) so a batch of T1 shoulders does not make every T2 or
localizer look wrong. A stratum smaller than ``min_stratum`` is scored against
the whole modality instead: a lone knee in its own plane is then compared with
the shoulders rather than escaping comparison.

Scores are Local Outlier Factors (scikit-learn), turned into a robust z value
against the batch's own scores (median, MAD) and squashed to 0-1, so one
threshold means the same in a tight batch and in a varied one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import LocalOutlierFactor
from sklearn.preprocessing import RobustScaler

from trialpacs.qc.features import GROUPS

FloatArray = NDArray[Any]
MAD_FLOOR = 0.1


@dataclass(frozen=True, slots=True)
class Stratum:
    modality: str
    plane: str
    family: str

    def key(self) -> str:
        return f"{self.modality}/{self.plane or '-'}/{self.family}"

    @classmethod
    def parse(cls, key: str) -> Stratum:
        m, p, f = [*key.split("/"), "", "", ""][:3]
        return cls(m, "" if p == "-" else p, f)


def family(ds: Dataset, localizer: bool) -> str:
    """Sequence family: localizer, dwi, t1, t2, pd, or other (from names, then TR/TE)."""
    if localizer:
        return "localizer"
    image_type = " ".join(str(v) for v in (ds.get("ImageType") or [])).upper()
    text = " ".join(
        str(ds.get(k, "") or "") for k in ("SeriesDescription", "ProtocolName", "SequenceName")
    ).upper()
    if "ADC" in image_type or any(w in text for w in ("ADC", "DWI", "DIFFUSION", "TRACE")):
        return "dwi"
    for word, fam in (("T1", "t1"), ("T2", "t2"), ("FLAIR", "t2"), ("STIR", "t2"), ("PD", "pd")):
        if word in text:
            return fam
    if str(ds.get("Modality", "")) != "MR":
        return "other"
    try:
        tr, te = float(ds.get("RepetitionTime") or 0), float(ds.get("EchoTime") or 0)
    except (TypeError, ValueError):
        return "other"
    if tr <= 0:
        return "other"
    if tr < 1000 and te < 35:
        return "t1"
    if te >= 60:
        return "t2"
    return "pd"


def _weights() -> FloatArray:
    """Each feature group weighs the same in distances, whatever its length."""
    parts = [np.full(n, 1.0 / math.sqrt(n)) for n in GROUPS.values()]
    return np.concatenate(parts)


def _prepare(reference: FloatArray, others: FloatArray | None = None) -> tuple[FloatArray, ...]:
    scaler = RobustScaler(quantile_range=(10.0, 90.0)).fit(reference)
    scale = scaler.scale_.copy()
    scale[scale < 1e-6] = 1.0
    scaler.scale_ = scale
    w = _weights()
    ref = np.clip(scaler.transform(reference), -20, 20) * w
    if others is None:
        return (ref,)
    return ref, np.clip(scaler.transform(others), -20, 20) * w


def neighbours(n: int) -> int:
    """LOF's k: at most 20, and well below the batch size (k near n makes every
    neighbourhood the whole batch, and an outlier then looks like everyone else)."""
    return max(2, min(20, (n - 1) // 2))


def _raw_scores(x: FloatArray, method: str) -> FloatArray:
    n = len(x)
    if method == "isolation_forest":
        forest = IsolationForest(n_estimators=200, random_state=0).fit(x)
        return np.asarray(-forest.score_samples(x), np.float64)
    lof = LocalOutlierFactor(n_neighbors=neighbours(n))
    lof.fit(x)
    return np.log(np.asarray(-lof.negative_outlier_factor_, np.float64))


def _to_unit(z: FloatArray, z_hold: float) -> FloatArray:
    """Robust z to 0-1, with z == z_hold at 0.5."""
    return 1.0 / (1.0 + np.exp(-(z - z_hold) / 1.5))


def _robust_z(values: FloatArray, reference: FloatArray) -> FloatArray:
    med = float(np.median(reference))
    mad = float(np.median(np.abs(reference - med))) * 1.4826
    # A floor on the spread: in a batch of near-identical series the MAD is tiny and
    # any harmless difference would look extreme. 0.1 in log-LOF is about LOF 1.1.
    return (values - med) / max(mad, MAD_FLOOR)


@dataclass(frozen=True, slots=True)
class Scored:
    score: float | None  # 0-1, None when the batch is too small
    z: float | None
    compared_with: str  # the stratum key or "MR (all)"
    peers: int


def comparison_set(strata: Sequence[Stratum], i: int, min_stratum: int) -> tuple[str, list[int]]:
    """Whom series ``i`` is compared with: its stratum, else its modality, else everyone."""
    own = strata[i]
    same = [j for j, s in enumerate(strata) if s == own]
    if len(same) >= min_stratum:
        return own.key(), same
    modality = [j for j, s in enumerate(strata) if s.modality == own.modality]
    if len(modality) >= min_stratum:
        return f"{own.modality} (all)", modality
    return "whole batch", list(range(len(strata)))


def score_batch(
    features: Sequence[FloatArray],
    strata: Sequence[Stratum],
    *,
    min_stratum: int = 10,
    z_hold: float = 6.0,
    method: str = "lof",
) -> list[Scored]:
    """Score every series against the others of the batch (transductive)."""
    cache: dict[str, dict[int, tuple[float, float]]] = {}
    out: list[Scored] = []
    for i in range(len(features)):
        label, idx = comparison_set(strata, i, min_stratum)
        if len(idx) < 3:
            out.append(Scored(None, None, label, len(idx) - 1))
            continue
        if label not in cache:
            x = np.stack([np.asarray(features[j], np.float64) for j in idx])
            (prepared,) = _prepare(x)
            raw = _raw_scores(prepared, method)
            z = _robust_z(raw, raw)
            unit = _to_unit(z, z_hold)
            cache[label] = {j: (float(unit[k]), float(z[k])) for k, j in enumerate(idx)}
        unit_i, z_i = cache[label][i]
        out.append(Scored(unit_i, z_i, label, len(idx) - 1))
    return out


def score_against(
    candidate: FloatArray,
    reference: Sequence[FloatArray],
    *,
    label: str,
    z_hold: float = 6.0,
    min_reference: int = 10,
    method: str = "lof",
) -> Scored:
    """Score one new series against the batch already seen (novelty mode)."""
    if len(reference) < min_reference:
        return Scored(None, None, label, len(reference))
    ref = np.stack([np.asarray(r, np.float64) for r in reference])
    cand = np.asarray(candidate, np.float64)[None, :]
    prepared, other = _prepare(ref, cand)
    if method == "isolation_forest":
        forest = IsolationForest(n_estimators=200, random_state=0).fit(prepared)
        ref_raw = -forest.score_samples(prepared)
        raw = -forest.score_samples(other)
    else:
        lof = LocalOutlierFactor(n_neighbors=neighbours(len(ref)), novelty=True)
        lof.fit(prepared)
        ref_raw = np.log(-lof.negative_outlier_factor_)
        raw = np.log(-lof.score_samples(other))
    z = _robust_z(np.asarray(raw, np.float64), np.asarray(ref_raw, np.float64))
    return Scored(float(_to_unit(z, z_hold)[0]), float(z[0]), label, len(reference))
