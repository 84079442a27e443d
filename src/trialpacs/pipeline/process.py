"""The series job: de-identify, verify, QC, publish. The same code on every executor.

Every step can be repeated: outputs are deterministic (same UIDs, same bytes)
and publishing an instance that is already published is an idempotent
success, so a job killed at any point and run again ends in the same state
with nothing lost and nothing twice.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

from pydicom import dcmread
from pydicom.dataset import Dataset
from sqlalchemy import select, update

from trialpacs.archive import Archive
from trialpacs.deid import DeidError
from trialpacs.deid.pixel_hook import PixelCleanError
from trialpacs.dicom.parse import parse_part10, write_part10
from trialpacs.errors import InvalidInput, TrialpacsError
from trialpacs.index.models import Instance, Series, Study, utcnow
from trialpacs.ingest.store import Placement, StoreOutcome, store_many
from trialpacs.pipeline import qc as qc_mod
from trialpacs.pipeline.deidentify import deidentifier
from trialpacs.pipeline.verify import originals, verify_instance
from trialpacs.trials import backends, catalog, timepoints
from trialpacs.trials.events import record_event
from trialpacs.trials.models import PUBLISHED, QUARANTINE, PipelineSeries

log = logging.getLogger(__name__)
PUBLISH_BATCH = 100


class PermanentFailure(TrialpacsError):
    """Retrying cannot help (verification failed, bad data, misconfiguration)."""


@dataclass(frozen=True)
class SeriesOutcome:
    state: str  # published | held_qc
    published: int
    reason: str = ""


def process_series(archive: Archive, series_uid: str, hook: qc_mod.QcHook) -> SeriesOutcome:
    refs, study_uid, trial_id, site_id = _quarantined(archive, series_uid)
    trial = catalog.get_trial(archive.db, trial_id)
    site = catalog.get_site(archive.db, site_id)
    if trial is None or site is None or site_id not in trial.sites:
        raise PermanentFailure(f"site {site_id} is no longer enrolled in trial {trial_id}")
    published_region = backends.registry(archive).spec(backends.PUBLISHED_BACKEND).region
    if published_region not in trial.deid_regions:
        raise PermanentFailure(
            f"trial {trial_id} does not allow de-identified data in region {published_region!r} "
            f"(deid_regions: {', '.join(trial.deid_regions) or 'none'})"
        )
    if qc_mod.prior_decision(archive, series_uid) == "rejected":
        # Rejected in the QC queue: never published, whatever runs it again.
        _set_state(archive, series_uid, "rejected_qc", reason="rejected in the QC queue")
        return SeriesOutcome("rejected_qc", 0, "rejected in the QC queue")
    visit = timepoints.resolve(archive, trial, study_uid)
    _set_state(archive, series_uid, "processing", seen=len(refs), visit=visit)
    if visit.timepoint is None and trial.timepoints:
        record_event(
            archive.db,
            "timepoint_unassigned",
            trial_id=trial_id,
            site_id=site_id,
            subject=series_uid,
            detail=visit.note,
        )
    deid = deidentifier(archive, trial, site, visit.timepoint)
    reg = backends.registry(archive)
    outputs: list[bytes] = []
    headers: list[Dataset] = []
    subject = ""
    problems: list[str] = []
    # The anatomy QC reads descriptions before the profile cleans them; it keeps a verdict only.
    reader = hook if isinstance(hook, qc_mod.ReadsIdentified) else None
    identified: object | None = None
    for sop_uid, blob_key, store_name in refs:
        data = reg.store(store_name).get(blob_key)
        try:
            parsed = parse_part10(data)
            if reader is not None and identified is None:
                identified = reader.read_identified(parsed.dataset)
            before = originals(parsed.dataset)
            result = deid.deidentify(parsed.dataset, in_place=True)
            # The pixel cleaner may change the encoding (a masked lossy image is
            # stored uncompressed): write what the dataset now is.
            meta = getattr(result.dataset, "file_meta", None)
            ts = str(meta.get("TransferSyntaxUID", parsed.transfer_syntax)) if meta else None
            out = write_part10(result.dataset, ts or parsed.transfer_syntax)
        except (DeidError, PixelCleanError, InvalidInput) as exc:
            # OCR failures included: the instance is kept for a person to decide.
            raise PermanentFailure(f"instance {sop_uid} cannot be de-identified: {exc}") from exc
        subject = result.subject_id
        # Verify what will be published: the written bytes, read back.
        out_ds = dcmread(io.BytesIO(out), stop_before_pixels=True)
        cleaned = result.pixel is not None and result.pixel.scanned
        verdict = verify_instance(before, out_ds, result.subject_id, pixels_cleaned=cleaned)
        if not verdict.ok:
            problems.append(f"{sop_uid}: {'; '.join(verdict.problems)}")
        outputs.append(out)
        headers.append(out_ds)
    if problems:
        raise PermanentFailure(
            f"verification found residual PHI in {len(problems)} instance(s): {problems[0]}"
        )
    first = headers[0]
    # What QC expects: the visit's modalities and anatomy, or any visit's if unassigned.
    tp = (visit.timepoint,) if visit.timepoint else trial.timepoints
    approved = qc_mod.prior_decision(archive, series_uid) == "approved"
    verdict_qc = qc_mod.QcVerdict("pass") if approved else hook.check(
        qc_mod.SeriesForQc(
            trial_id=trial_id,
            site_id=site_id,
            series_uid=str(first.SeriesInstanceUID),
            modality=str(first.get("Modality", "")),
            body_part=str(first.get("BodyPartExamined", "")),
            datasets=headers,
            expected_modalities=tuple(m for t in tp for m in t.modalities),
            expected_anatomy=tuple(a for t in tp for a in t.anatomy),
            expected_series=tuple(f for t in tp for f in t.expected_series),
            timepoint=visit.timepoint_id,
            key=series_uid,
            subject=subject,
            instances=tuple(outputs),
            identified=identified,
            archive=archive,
        )
    )
    if verdict_qc.status == "hold":
        _set_state(archive, series_uid, "held_qc", reason=verdict_qc.reason, subject=subject)
        record_event(
            archive.db,
            "qc_hold",
            trial_id=trial_id,
            site_id=site_id,
            subject=subject,
            detail=verdict_qc.reason,
        )
        return SeriesOutcome("held_qc", 0, verdict_qc.reason)
    if verdict_qc.status == "fail":
        raise PermanentFailure(f"QC failed: {verdict_qc.reason}")
    placement = Placement(collection=PUBLISHED, trial_id=trial_id, site_id=site_id)
    published = 0
    for start in range(0, len(outputs), PUBLISH_BATCH):
        chunk = outputs[start : start + PUBLISH_BATCH]
        for outcome in store_many(archive, chunk, placement=placement):
            if not isinstance(outcome, StoreOutcome):
                raise outcome
            published += 1
    _set_state(
        archive,
        series_uid,
        "published",
        seen=len(refs),
        published=published,
        subject=subject,
        study=str(first.StudyInstanceUID),
        series=str(first.SeriesInstanceUID),
    )
    log.info("published series %s of %s/%s: %d instances", series_uid, trial_id, site_id, published)
    return SeriesOutcome("published", published)


def _quarantined(
    archive: Archive, series_uid: str
) -> tuple[list[tuple[str, str, str | None]], str, str, str]:
    with archive.db.read() as session:
        rows = session.execute(
            select(
                Instance.sop_uid,
                Instance.blob_key,
                Instance.store,
                Study.study_uid,
                Study.trial_id,
                Study.site_id,
                Study.collection,
            )
            .join(Series, Series.pk == Instance.series_pk)
            .join(Study, Study.pk == Instance.study_pk)
            .where(Series.series_uid == series_uid)
            .order_by(Instance.instance_number, Instance.pk)
        ).all()
    if not rows:
        raise PermanentFailure(f"series {series_uid} has no instances")
    if rows[0].collection != QUARANTINE or not rows[0].trial_id or not rows[0].site_id:
        raise PermanentFailure(f"series {series_uid} is not identified data of a trial")
    refs = [(r.sop_uid, r.blob_key, r.store) for r in rows]
    return refs, rows[0].study_uid, rows[0].trial_id, rows[0].site_id


def _set_state(
    archive: Archive,
    series_uid: str,
    state: str,
    *,
    seen: int | None = None,
    published: int | None = None,
    reason: str = "",
    subject: str | None = None,
    study: str | None = None,
    series: str | None = None,
    visit: timepoints.Assignment | None = None,
) -> None:
    values: dict[str, object] = {"state": state, "reason": reason, "updated_at": utcnow()}
    if visit is not None:
        values["timepoint_id"] = visit.timepoint_id
        values["timepoint_source"] = visit.source
    if seen is not None:
        values["seen_instances"] = seen
    if published is not None:
        values["published_instances"] = published
    if subject is not None:
        values["subject"] = subject
    if study is not None:
        values["published_study_uid"] = study
    if series is not None:
        values["published_series_uid"] = series
    with archive.db.write() as session:
        session.execute(
            update(PipelineSeries).where(PipelineSeries.series_uid == series_uid).values(**values)
        )


def mark_attention(archive: Archive, series_uid: str, reason: str) -> None:
    _set_state(archive, series_uid, "needs_attention", reason=reason)
    with archive.db.read() as session:
        row = session.scalars(
            select(PipelineSeries).where(PipelineSeries.series_uid == series_uid)
        ).first()
    record_event(
        archive.db,
        "needs_attention",
        trial_id=row.trial_id if row else "",
        site_id=row.site_id if row else "",
        subject=series_uid,
        detail=reason,
    )
