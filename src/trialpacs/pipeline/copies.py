"""Copies of a trial's published series to the de-identified backends it declares.

A trial's ``publish_to`` names de-identified backends (a sponsor's bucket in
its region, say) that receive every instance the pipeline publishes, besides
the served archive. The targets are checked before the series job does any
work (``backends.deidentified_store`` refuses, records and audits a backend
outside the trial's ``deid_regions``), and the copies are written from the
published archive after publication, under the published UIDs: a re-run
writes the same bytes under the same keys.
"""

from __future__ import annotations

from sqlalchemy import select

from trialpacs.archive import Archive
from trialpacs.index import lookup
from trialpacs.pipeline.process import PermanentFailure
from trialpacs.storage import BlobStore, instance_key
from trialpacs.trials import backends, catalog
from trialpacs.trials.models import PipelineSeries

Target = tuple[str, BlobStore]
BATCH = 50


def targets_for_series(archive: Archive, series_uid: str) -> list[Target]:
    """The trial's declared backends, after the residency check; PermanentFailure if refused."""
    with archive.db.read() as session:
        trial_id = session.scalar(
            select(PipelineSeries.trial_id).where(PipelineSeries.series_uid == series_uid)
        )
    trial = catalog.get_trial(archive.db, trial_id) if trial_id else None
    if trial is None:
        return []
    out: list[Target] = []
    for name in trial.publish_to:
        try:
            spec, store = backends.deidentified_store(
                archive, name, trial_id=trial.trial_id, allowed_regions=trial.deid_regions
            )
        except backends.ResidencyViolation as exc:
            raise PermanentFailure(str(exc)) from exc
        out.append((spec.name, store))
    return out


def copy_published(archive: Archive, series_uid: str, targets: list[Target]) -> int:
    """Copy the published instances of an identified series to each target; returns the count."""
    if not targets:
        return 0
    with archive.db.read() as session:
        published = session.scalar(
            select(PipelineSeries.published_series_uid).where(
                PipelineSeries.series_uid == series_uid
            )
        )
        refs = lookup.instances(session, series_uid=published) if published else []
    for start in range(0, len(refs), BATCH):
        chunk = refs[start : start + BATCH]
        items = [
            (instance_key(r.study_uid, r.series_uid, r.sop_uid), archive.store.get(r.blob_key))
            for r in chunk
        ]
        for _name, store in targets:
            store.put_many(items)
    return len(refs)
