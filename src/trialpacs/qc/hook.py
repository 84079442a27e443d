"""The anatomy QC as the pipeline's QC hook (the default when no other is configured).

The pipeline calls :meth:`AnatomyQc.read_identified` on the first identified
instance before de-identification (so descriptions that the profile cleans
still count) and :meth:`AnatomyQc.check` on the de-identified series. A trial
that declares no anatomy is passed untouched. Results, features and a
thumbnail of the de-identified pixels are stored for the queue and for later
series' comparisons.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset

from trialpacs.pipeline.qc import QcVerdict, SeriesForQc
from trialpacs.qc import descriptors, features, geometry, outliers, store
from trialpacs.qc.descriptors import Evidence
from trialpacs.qc.fusion import QcResult, Thresholds, for_trial, fuse
from trialpacs.qc.outliers import Scored, Stratum

log = logging.getLogger(__name__)
LOCALIZER_REASON = "localizer filed as diagnostic series"


def _position(ds: Dataset) -> float:
    return features._position(ds)


def central_indices(headers: Sequence[Dataset], count: int = features.CENTRAL) -> list[int]:
    order = sorted(range(len(headers)), key=lambda i: _position(headers[i]))
    mid = len(order) // 2
    start = max(0, mid - count // 2)
    return order[start : start + count]


def read_identified(ds: Dataset) -> Evidence:
    evidence = descriptors.read_evidence(ds)
    geom = geometry.read([ds])
    return Evidence(evidence.findings, evidence.laterality, outliers.family(ds, geom.localizer))


class AnatomyQc:
    def read_identified(self, dataset: Dataset) -> object:
        return read_identified(dataset)

    def check(self, series: SeriesForQc) -> QcVerdict:
        if not series.expected_anatomy and not series.expected_series:
            return QcVerdict("pass")
        archive = series.archive
        installation = archive.settings.qc_thresholds if archive is not None else {}
        trial = store.trial_qc(archive.db, series.trial_id) if archive is not None else {}
        try:
            thresholds = for_trial(installation, trial)
        except (TypeError, ValueError) as exc:
            return QcVerdict("hold", f"QC thresholds of trial {series.trial_id}: {exc}")
        try:
            if series.expected_anatomy:
                result, stratum, vector, thumb = assess_series(series, thresholds)
            else:  # only the expected series are declared: the localizer rule alone
                result, stratum = series_rules(series, thresholds)
                vector = thumb = None
                if result.status == "pass":
                    return QcVerdict("pass")
        except ValueError as exc:  # an expected anatomy the vocabulary does not know
            return QcVerdict("hold", f"anatomy QC could not run: {exc}")
        if series.archive is not None and series.key:
            store.save_result(
                series.archive.db,
                series.key,
                deid_series_uid=series.series_uid,
                deid_study_uid=str(series.datasets[0].get("StudyInstanceUID", "")),
                trial_id=series.trial_id,
                site_id=series.site_id,
                subject=series.subject,
                timepoint=series.timepoint,
                modality=series.modality,
                stratum=stratum.key(),
                features=vector.astype(np.float32).tobytes() if vector is not None else None,
                thumbnail=thumb,
                metadata_status=result.metadata.status,
                metadata_score=result.metadata.score,
                image_score=result.image.score if result.image else None,
                fused_score=result.score,
                verdict=result.status,
                reasons=result.reasons,
            )
        return QcVerdict(result.status, result.summary() if result.status == "hold" else "")


def _evidence(series: SeriesForQc) -> Evidence:
    if isinstance(series.identified, Evidence):
        return series.identified
    # No identified read (hook called directly): what survived de-identification.
    return read_identified(series.datasets[0])


def localizer_rule(result: QcResult, family: str, series: SeriesForQc, t: Thresholds) -> QcResult:
    """A scout is a planning image: whatever its anatomy, it is not the diagnostic series."""
    if family != "localizer" or t.accept_localizers or "localizer" in series.expected_series:
        return result
    return replace(result, status="hold", reasons=(LOCALIZER_REASON, *result.reasons))


def series_rules(series: SeriesForQc, thresholds: Thresholds) -> tuple[QcResult, Stratum]:
    """The checks a time point that declares series but no anatomy gets."""
    geom = geometry.read(series.datasets)
    fam = _evidence(series).family or outliers.family(series.datasets[0], geom.localizer)
    meta = descriptors.MetadataVerdict("unknown", 0.5, ("the time point declares no anatomy",))
    result = QcResult("pass", 0.0, meta, None, ())
    stratum = Stratum(series.modality, geom.plane, fam)
    return localizer_rule(result, fam, series, thresholds), stratum


def assess_series(
    series: SeriesForQc, thresholds: Thresholds
) -> tuple[QcResult, Stratum, np.ndarray | None, bytes | None]:
    headers = series.datasets
    geom = geometry.read(headers)
    evidence = _evidence(series)
    meta = descriptors.assess(
        evidence,
        geom,
        series.expected_anatomy,
        modality=series.modality,
        expected_modalities=series.expected_modalities,
    )
    fam = evidence.family or outliers.family(headers[0], geom.localizer)
    stratum = Stratum(series.modality, geom.plane, fam)
    vector = thumb = None
    image: Scored | None = None
    if series.instances:
        try:
            picked = [dcmread(io.BytesIO(series.instances[i])) for i in central_indices(headers)]
            feats = features.series_features(picked)
            vector, thumb = feats.vector, feats.png()
        except Exception as exc:  # undecodable pixels: the image layer stays silent
            log.warning("QC image features of %s failed: %s", series.series_uid, exc)
    if vector is not None and series.archive is not None:
        ref = store.reference(
            series.archive.db, series.trial_id, stratum, series.key, thresholds.min_stratum
        )
        image = outliers.score_against(
            vector,
            ref.vectors,
            label=ref.label,
            z_hold=thresholds.z_hold,
            min_reference=thresholds.min_reference,
            method=thresholds.method,
        )
    result = localizer_rule(fuse(meta, image, thresholds), fam, series, thresholds)
    return result, stratum, vector, thumb
