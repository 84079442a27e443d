"""One verdict from the two layers, with the reasons a person reads in the queue.

The fused score is a weighted mean of the layers that have something to say.
The image layer weighs more by default because header text is wrong often
(BodyPartExamined in about one series in six): a knee labelled SHOULDER must
still rank above a shoulder labelled KNEE.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from trialpacs.qc.descriptors import MetadataVerdict
from trialpacs.qc.outliers import Scored


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Per-trial knobs: the trial's ``qc:`` block over the installation default (docs/qc.md)."""

    hold: float = 0.5  # fused score at or above which a series is held
    image_weight: float = 0.6
    z_hold: float = 6.0  # robust z of the outlier score that maps to image score 0.5
    min_reference: int = 10  # series of the same kind needed before the image layer speaks
    min_stratum: int = 10
    method: Literal["lof", "isolation_forest"] = "lof"
    hold_unverifiable: bool = False  # hold when neither layer can say anything
    accept_localizers: bool = False  # a localizer may be filed as the diagnostic series

    @classmethod
    def from_mapping(cls, values: dict[str, object]) -> Thresholds:
        known = set(cls.__dataclass_fields__)
        unknown = set(values) - known
        if unknown:
            raise ValueError(
                f"unknown QC threshold(s) {', '.join(sorted(unknown))}; "
                f"known: {', '.join(sorted(known))}"
            )
        return cls(**values)  # type: ignore[arg-type]


def for_trial(installation: dict[str, object], trial: dict[str, object]) -> Thresholds:
    """The trial's ``qc:`` keys over the installation default, both in configuration spelling.

    Both are validated with the configuration schema, so a bad value names its key.
    """
    from trialpacs.config.schema import QcCfg

    merged = {**QcCfg.model_validate(installation).chosen(), **QcCfg.model_validate(trial).chosen()}
    if merged.get("method") == "iforest":
        merged["method"] = "isolation_forest"
    return Thresholds.from_mapping(merged)


@dataclass(frozen=True, slots=True)
class QcResult:
    status: Literal["pass", "hold"]
    score: float
    metadata: MetadataVerdict
    image: Scored | None
    reasons: tuple[str, ...] = field(default_factory=tuple)

    def summary(self) -> str:
        return "; ".join(self.reasons)


def fuse(meta: MetadataVerdict, image: Scored | None, t: Thresholds) -> QcResult:
    img = image.score if image is not None else None
    meta_known = meta.status != "unknown"
    parts: list[tuple[float, float]] = []
    if img is not None:
        parts.append((t.image_weight, img))
    if meta_known or img is None:
        parts.append((1.0 - t.image_weight, meta.score))
    total = sum(w for w, _ in parts)
    score = sum(w * s for w, s in parts) / total if total else 0.5
    if img is not None and not meta_known:
        # Unknown metadata is mild evidence for suspicion, never against it.
        score = max(score, t.image_weight * img + (1 - t.image_weight) * 0.5)
    reasons: list[str] = []
    if meta.status == "conflicting":
        reasons.extend(meta.reasons)
    elif meta.status == "unknown":
        reasons.append(f"metadata: {meta.reasons[0] if meta.reasons else 'unknown'}")
    else:
        reasons.extend(meta.reasons)
    if image is not None and image.score is not None and image.z is not None:
        if image.score >= 0.5:
            reasons.append(
                f"image is an outlier among {image.peers} series ({image.compared_with}), "
                f"z={image.z:.1f}"
            )
        elif meta.status == "conflicting":
            reasons.append(f"but the image looks like the rest of the batch (z={image.z:.1f})")
    elif image is not None:
        reasons.append(
            f"image not compared: only {image.peers} earlier series of this kind "
            f"({image.compared_with}), {t.min_reference} needed"
        )
    unverifiable = img is None and not meta_known
    if unverifiable:
        status: Literal["pass", "hold"] = "hold" if t.hold_unverifiable else "pass"
    else:
        status = "hold" if score >= t.hold else "pass"
    return QcResult(status, round(float(score), 4), meta, image, tuple(reasons))
