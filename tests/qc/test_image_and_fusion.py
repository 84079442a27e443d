"""Image layer and fusion on variants of the real shoulder and knee MR images."""

from __future__ import annotations

import numpy as np
import pytest

from qc.support import series
from trialpacs.qc import descriptors, features, geometry, outliers
from trialpacs.qc.descriptors import MetadataVerdict
from trialpacs.qc.fusion import Thresholds, for_trial, fuse
from trialpacs.qc.outliers import Scored, Stratum
from trialpacs.qc.synthetic import Source


def _stratum(datasets: list) -> Stratum:  # type: ignore[type-arg]
    g = geometry.read(datasets)
    return Stratum(str(datasets[0].Modality), g.plane, outliers.family(datasets[0], g.localizer))


def test_features_have_fixed_length_and_a_thumbnail(sources: dict[str, Source]) -> None:
    f = features.series_features(series(sources["shoulder"], 1))
    assert f.vector.shape == (features.DIM,) and np.isfinite(f.vector).all()
    assert f.png().startswith(b"\x89PNG")


def test_a_planted_knee_is_the_top_outlier_among_shoulders(sources: dict[str, Source]) -> None:
    batch = [series(sources["shoulder"], seed) for seed in range(30)]
    batch.insert(17, series(sources["knee"], 99))
    vectors = [features.series_features(s).vector for s in batch]
    scored = outliers.score_batch(vectors, [_stratum(s) for s in batch], min_stratum=10)
    ranking = sorted(range(len(batch)), key=lambda i: -(scored[i].score or 0))
    assert ranking[0] == 17
    assert scored[17].score is not None and scored[17].score > 0.9
    strata = [_stratum(s) for s in batch]
    forest = outliers.score_batch(vectors, strata, method="isolation_forest")
    assert max(range(len(batch)), key=lambda i: forest[i].score or 0) == 17
    # With what the headers say, only the knee is held.
    t = Thresholds()
    verdicts = [
        fuse(descriptors.assess(descriptors.read_evidence(s[0]), None, ["SHOULDER"]), sc, t)
        for s, sc in zip(batch, scored, strict=True)
    ]
    assert [i for i, v in enumerate(verdicts) if v.status == "hold"] == [17]
    # The same in novelty mode against the batch already accepted (what the pipeline does).
    novel = outliers.score_against(vectors[17], vectors[:17], label="MR (all)")
    normal = outliers.score_against(vectors[0], vectors[1:17], label="MR (all)")
    assert novel.score is not None and normal.score is not None
    assert novel.score > 0.5 > normal.score


def test_strata_keep_other_contrasts_and_localizers_apart(sources: dict[str, Source]) -> None:
    t1 = series(sources["shoulder"], 1)
    assert _stratum(t1).key() == "MR/SAG/t1"
    assert _stratum(series(sources["shoulder"], 2, "contrast")).family == "t2"
    assert _stratum(series(sources["shoulder"], 3, "localizer")).family == "localizer"
    assert outliers.score_against(np.zeros(features.DIM), [], label="x").score is None


def test_fusion_gives_reasons_and_trusts_the_image_over_swapped_labels() -> None:
    t = Thresholds()
    conflicting = MetadataVerdict("conflicting", 1.0, ("BodyPartExamined names Knee",))
    consistent = MetadataVerdict("consistent", 0.0)
    outlier = Scored(0.97, 11.0, "MR (all)", 40)
    typical = Scored(0.02, 0.3, "MR/SAG/t1", 40)
    both = fuse(conflicting, outlier, t)
    assert both.status == "hold"
    assert both.reasons[0] == "BodyPartExamined names Knee"
    assert "image is an outlier among 40 series (MR (all)), z=11.0" in both.reasons
    disguised = fuse(consistent, outlier, t)  # a knee labelled SHOULDER
    mislabelled = fuse(conflicting, typical, t)  # a shoulder labelled KNEE
    assert disguised.score > mislabelled.score
    assert disguised.status == "hold" and mislabelled.status == "pass"
    assert "but the image looks like the rest of the batch" in mislabelled.summary()
    cold = fuse(MetadataVerdict("unknown", 0.5, ("no anatomy in the headers",)), None, t)
    assert cold.status == "pass"  # nothing to go on: not held unless the trial says so
    assert fuse(cold.metadata, None, Thresholds(hold_unverifiable=True)).status == "hold"


def test_trial_thresholds_override_the_installation_default_and_bad_names_are_refused() -> None:
    installation: dict[str, object] = {"hold": 0.6, "method": "iforest"}
    t1 = for_trial(installation, {"image_weight": 0.8})
    assert (t1.hold, t1.image_weight, t1.method) == (0.6, 0.8, "isolation_forest")
    assert for_trial(installation, {}).image_weight == Thresholds().image_weight
    assert for_trial({}, {"hold": 0.7}).hold == 0.7
    with pytest.raises(ValueError, match="hodl"):
        for_trial({}, {"hodl": 0.5})


def test_metadata_of_variants_still_names_the_source_anatomy(sources: dict[str, Source]) -> None:
    ds = series(sources["knee"], 5)[0]
    verdict = descriptors.assess(descriptors.read_evidence(ds), None, ["SHOULDER"])
    assert verdict.status == "conflicting"
