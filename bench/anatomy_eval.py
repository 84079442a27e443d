"""Anatomy QC evaluation: plant other anatomies into batches of one anatomy.

One command: ``.venv/bin/python bench/anatomy_eval.py [--draws 100] [--batch 200]``.

The real series in the shared test corpus (``TRIALPACS_TESTDATA``) are few: one
shoulder MR image, one knee, a 20-slice brain series, a 20-slice prostate ADC
series, head, abdomen, CT, CR and NM images. Batches are therefore built from
seeded augmentations of them (``trialpacs.qc.synthetic``: crops, rotations,
flips, resampling, bias field, gamma, noise, synthetic slice stacks). Every
number below is measured on augmentations of a few real acquisitions, not on
a clinical cohort.

A batch of ``--batch`` series of one base anatomy (shoulder, brain, prostate in
turn) holds ``--hard-negatives`` of the same anatomy with another contrast or
as localizers (negatives that look different), and contaminants of other
anatomies at 0.5 %, 1 % and 5 % (at least one). With ``corrupted labels``, a
third of the series have BodyPartExamined and the descriptions blanked or
swapped: a contaminant's swapped labels are the base anatomy's (a knee labelled
SHOULDER), a base series' are another anatomy's. Each setting runs ``--draws``
seeded draws; the table reports means over draws of series-level AUROC,
average precision, precision and recall at k (k = contaminants), the best
recall at <= 5 % false positives, and, at the deployed decision (metadata:
conflicting; image: score >= 0.5; fused: hold), recall, false-positive rate
and the false-positive rate on the hard negatives alone.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from trialpacs.qc import anatomy, descriptors, features, geometry, outliers
from trialpacs.qc.descriptors import MetadataVerdict
from trialpacs.qc.fusion import Thresholds, fuse
from trialpacs.qc.synthetic import Source, corrupt, load_sources, variant

ROOT = Path(__file__).resolve().parent.parent
BASES = {"shoulder": "SHOULDER", "brain": "BRAIN", "prostate": "PROSTATE"}
LAYERS = ("metadata", "image", "fused")


@dataclass
class Item:
    source: str
    anatomy: str
    kind: str
    vector: np.ndarray
    stratum: outliers.Stratum
    header: Dataset  # first instance, pixels dropped
    geometry: geometry.Geometry
    evidence: descriptors.Evidence  # of the uncorrupted header


def _item(src: Source, datasets: list[Dataset], kind: str) -> Item:
    vec = features.series_features(datasets).vector
    geom = geometry.read(datasets)
    header = datasets[0]
    del header.PixelData
    fam = outliers.family(header, geom.localizer)
    stratum = outliers.Stratum(str(header.get("Modality", "")), geom.plane, fam)
    evidence = descriptors.read_evidence(header)
    return Item(src.name, src.anatomy, kind, vec, stratum, header, geom, evidence)


def build_pools(
    sources: list[Source], bases: list[str], scale: float, seed: int
) -> tuple[dict[str, dict[str, list[Item]]], dict[str, list[Item]]]:
    rng = np.random.default_rng(seed)
    base_src = {b: next(s for s in sources if s.anatomy == b) for b in bases}
    pools: dict[str, dict[str, list[Item]]] = {}
    for b, src in base_src.items():
        pools[b] = {
            kind: [_item(src, variant(src, rng, kind), kind) for _ in range(round(n * scale))]  # type: ignore[arg-type]
            for kind, n in (("plain", 300), ("contrast", 40), ("localizer", 40))
        }
    contaminants: dict[str, list[Item]] = {}
    for src in sources:
        contaminants[src.name] = [
            _item(src, variant(src, rng), "contaminant") for _ in range(round(25 * scale))
        ]
    return pools, contaminants


def _compatible(a: str, b: str) -> bool:
    """Anatomies that are not wrong for each other (brain in a head image).

    A whole-body scan contains everything but is never what a shoulder trial wants.
    """
    ra, rb = anatomy.expected(a.replace("-", " ")), anatomy.expected(b.replace("-", " "))
    if "EntireBody" in (ra.keyword, rb.keyword):
        return False
    return anatomy.relation(ra, rb) != "disjoint"


def draw(
    base: str,
    pools: dict[str, dict[str, list[Item]]],
    contaminants: dict[str, list[Item]],
    rng: np.random.Generator,
    size: int,
    rate: float,
    hard: float,
) -> tuple[list[Item], np.ndarray]:
    n_pos = max(1, round(rate * size))
    n_hard = round(hard * size)
    n_plain = size - n_pos - n_hard
    pool = pools[base]
    pick = lambda items, n: [items[i] for i in rng.choice(len(items), n, replace=False)]  # noqa: E731
    chosen = pick(pool["plain"], n_plain)
    chosen += pick(pool["contrast"], n_hard // 2) + pick(pool["localizer"], n_hard - n_hard // 2)
    names = [n for n, items in contaminants.items() if not _compatible(items[0].anatomy, base)]
    for _ in range(n_pos):
        items = contaminants[names[int(rng.integers(0, len(names)))]]
        chosen.append(items[int(rng.integers(0, len(items)))])
    labels = np.array([0] * (n_plain + n_hard) + [1] * n_pos)
    order = rng.permutation(len(chosen))
    return [chosen[i] for i in order], labels[order]


def metadata_verdicts(
    batch: list[Item],
    labels: np.ndarray,
    base: str,
    rng: np.random.Generator,
    corrupt_rate: float,
    donors: dict[str, list[Dataset]],
) -> list[MetadataVerdict]:
    out = []
    for item, y in zip(batch, labels, strict=True):
        evidence = item.evidence
        if corrupt_rate and rng.random() < corrupt_rate:
            mode = "blank" if rng.random() < 0.5 else "swap"
            pool = donors[base] if y else [d for a, ds in donors.items() if a != base for d in ds]
            evidence = descriptors.read_evidence(corrupt(item.header, rng, pool, mode))
        out.append(
            descriptors.assess(
                evidence,
                item.geometry,
                [BASES[base]],
                modality=item.stratum.modality,
                expected_modalities=["MR"],
            )
        )
    return out


def _metrics(y: np.ndarray, s: np.ndarray, flag: np.ndarray, hard: np.ndarray) -> dict[str, float]:
    k = int(y.sum())
    top = np.argsort(-s, kind="stable")[:k]
    fpr, tpr, _ = roc_curve(y, s)
    neg = y == 0
    return {
        "auroc": float(roc_auc_score(y, s)),
        "ap": float(average_precision_score(y, s)),
        "p@k": float(y[top].mean()),
        "r@k": float(y[top].sum() / k),
        "recall@5%fpr": float(tpr[fpr <= 0.05].max()),
        "recall": float(flag[y == 1].mean()),
        "fpr": float(flag[neg].mean()),
        "hn_fpr": float(flag[hard].mean()) if hard.any() else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--testdata", type=Path, default=Path(os.environ.get(
        "TRIALPACS_TESTDATA", ROOT.parent / "shared" / "testdata")))  # fmt: skip
    ap.add_argument("--draws", type=int, default=100)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--rates", default="0.005,0.01,0.05")
    ap.add_argument("--bases", default="shoulder,brain,prostate")
    ap.add_argument("--hard-negatives", type=float, default=0.2)
    ap.add_argument("--corrupt", type=float, default=1 / 3)
    ap.add_argument(
        "--pool-scale", type=float, default=0.6,
        help="variants per pool: 180 plain, 24 per hard-negative kind, 15 per contaminant source",
    )  # fmt: skip
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--method", choices=("lof", "isolation_forest"), default="lof")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    sources = load_sources(args.testdata)
    bases = [b.strip() for b in args.bases.split(",") if b.strip()]
    unknown = set(bases) - set(BASES)
    if unknown:
        known = ", ".join(BASES)
        ap.error(f"unknown base anatomy {', '.join(sorted(unknown))}; choose from {known}")
    pools, contaminants = build_pools(sources, bases, args.pool_scale, args.seed)
    donors: dict[str, list[Dataset]] = defaultdict(list)
    for items in contaminants.values():
        donors[items[0].anatomy].append(items[0].header)
    t_pool = time.perf_counter() - t0
    thresholds = Thresholds(method=args.method)
    rates = [float(r) for r in args.rates.split(",")]
    results: dict[tuple[str, float, str], list[dict[str, float]]] = defaultdict(list)
    for rate in rates:
        for d in range(args.draws):
            base = bases[d % len(bases)]
            rng = np.random.default_rng([args.seed, int(rate * 1000), d])
            batch, y = draw(base, pools, contaminants, rng, args.batch, rate, args.hard_negatives)
            image = outliers.score_batch(
                [i.vector for i in batch],
                [i.stratum for i in batch],
                min_stratum=thresholds.min_stratum,
                z_hold=thresholds.z_hold,
                method=thresholds.method,
            )
            hard = np.array([i.kind in ("contrast", "localizer") for i in batch])
            for setting, rate_c in (("clean", 0.0), ("corrupted", args.corrupt)):
                meta = metadata_verdicts(batch, y, base, rng, rate_c, donors)
                fused = [fuse(m, s, thresholds) for m, s in zip(meta, image, strict=True)]
                layers: dict[str, tuple[np.ndarray, np.ndarray]] = {
                    "metadata": (
                        np.array([m.score for m in meta]),
                        np.array([m.status == "conflicting" for m in meta]),
                    ),
                    "image": (
                        np.array([s.score if s.score is not None else 0.5 for s in image]),
                        np.array([(s.score or 0) >= 0.5 for s in image]),
                    ),
                    "fused": (
                        np.array([f.score for f in fused]),
                        np.array([f.status == "hold" for f in fused]),
                    ),
                }
                for layer, (scores, flags) in layers.items():
                    results[(setting, rate, layer)].append(_metrics(y, scores, flags, hard))
    t_total = time.perf_counter() - t0
    print_table(results, args, len(sources), t_pool, t_total)
    return 0


def print_table(
    results: dict[tuple[str, float, str], list[dict[str, float]]],
    args: Any,
    n_sources: int,
    t_pool: float,
    t_total: float,
) -> None:
    cols = ["auroc", "ap", "p@k", "r@k", "recall@5%fpr", "recall", "fpr", "hn_fpr"]
    print(
        f"anatomy QC evaluation: {args.draws} draws per contamination, batch {args.batch}, "
        f"bases {args.bases}, hard negatives {args.hard_negatives:.0%}, corrupted labels "
        f"{args.corrupt:.0%}, method {args.method}, seed {args.seed}"
    )
    print(
        f"series are seeded augmentations of {n_sources} real series from {args.testdata} "
        f"(pools built in {t_pool:.0f} s, total {t_total:.0f} s)"
    )
    print()
    print("| labels | contamination | layer | " + " | ".join(cols) + " |")
    print("|---|---|---|" + "---|" * len(cols))
    for (setting, rate, layer), rows in sorted(results.items(), key=_order):
        means = [np.nanmean([r[c] for r in rows]) for c in cols]
        cells = " | ".join(f"{m:.3f}" for m in means)
        print(f"| {setting} | {rate:.1%} | {layer} | {cells} |")


def _order(entry: tuple[tuple[str, float, str], Any]) -> tuple[int, float, int]:
    (setting, rate, layer), _ = entry
    return (0 if setting == "clean" else 1, rate, LAYERS.index(layer))


if __name__ == "__main__":
    sys.exit(main())
