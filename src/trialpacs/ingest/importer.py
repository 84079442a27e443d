"""Import files, folders and zips into the archive, reporting each outcome."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from trialpacs.archive import Archive
from trialpacs.errors import TrialpacsError
from trialpacs.ingest.sources import SourceItem, ZipLimits, iter_sources
from trialpacs.ingest.store import PUBLISHED, Placement, StoreOutcome, StoreStatus, store_many

QUARANTINE = "quarantine"  # trials.models.QUARANTINE (ingest does not import trials)


@dataclass
class ImportReport:
    stored: int = 0
    duplicates: int = 0
    replaced: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # label, reason
    bytes: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed

    def reasons(self) -> Counter[str]:
        return Counter(reason.split(":")[0] for _, reason in self.failed)


def collect(paths: list[Path], archive: Archive) -> list[SourceItem]:
    limits = ZipLimits(
        max_ratio=archive.settings.zip_max_ratio,
        max_total_bytes=archive.settings.zip_max_total_bytes,
    )
    return list(iter_sources(paths, limits))


def import_items(
    archive: Archive,
    items: list[SourceItem],
    progress: Callable[[SourceItem], None] | None = None,
    batch_bytes: int = 64 * 1024 * 1024,
    placement: Placement = PUBLISHED,
) -> ImportReport:
    """Store items in batches (one index transaction each), bounded in memory."""
    report = ImportReport()
    batch: list[tuple[SourceItem, bytes]] = []
    size = 0

    def flush() -> None:
        nonlocal size
        outcomes = store_many(archive, [data for _, data in batch], placement=placement)
        for (item, _), outcome in zip(batch, outcomes, strict=True):
            _count(report, item, outcome)
            if progress:
                progress(item)
        batch.clear()
        size = 0

    for item in items:
        try:
            data = item.read()
        except OSError as exc:
            report.failed.append((item.label, f"cannot read: {exc}"))
            if progress:
                progress(item)
            continue
        if placement.collection == QUARANTINE:
            try:
                data = _wrap_message(data, item.label)
            except TrialpacsError as exc:
                report.failed.append((item.label, str(exc)))
                if progress:
                    progress(item)
                continue
        batch.append((item, data))
        size += len(data)
        if len(batch) >= 100 or size >= batch_bytes:
            flush()
    if batch:
        flush()
    return report


def _wrap_message(data: bytes, label: str) -> bytes:
    """HL7 v2 and FHIR files name their patient: they enter a site's quarantine as DICOM SR.

    Everything else is stored as it is (DICOM, or refused by the store path
    as not DICOM); PDFs and videos need the patient from the upload route or
    ``trialpacs deid --patient-id``.
    """
    if len(data) > 132 and data[128:132] == b"DICM":
        return data
    from trialpacs.records.formats import RecordFormat, detect_format
    from trialpacs.records.intake import Intake, wrap_record

    try:
        fmt = detect_format(data, label)
    except TrialpacsError:
        return data
    if fmt not in (RecordFormat.HL7V2, RecordFormat.FHIR):
        return data
    return wrap_record(data, label, Intake())[1]


def _count(report: ImportReport, item: SourceItem, outcome: StoreOutcome | TrialpacsError) -> None:
    if isinstance(outcome, TrialpacsError):
        report.failed.append((item.label, str(outcome)))
        return
    report.bytes += outcome.size
    if outcome.status is StoreStatus.STORED:
        report.stored += 1
    elif outcome.status is StoreStatus.DUPLICATE:
        report.duplicates += 1
    else:
        report.replaced += 1
