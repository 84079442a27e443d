"""Import files, folders and zips into the archive, reporting each outcome."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from trialpacs.archive import Archive
from trialpacs.errors import TrialpacsError
from trialpacs.ingest.sources import SourceItem, ZipLimits, iter_sources
from trialpacs.ingest.store import PUBLISHED, Placement, StoreOutcome, StoreStatus, store_many

if TYPE_CHECKING:
    from trialpacs.records.intake import Intake

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
    records: Intake | None = None,
) -> ImportReport:
    """Store items in batches (one index transaction each), bounded in memory.

    Into a site's quarantine, record files (PDF, text, HL7 v2, FHIR, MP4/MOV)
    are wrapped as DICOM by ``records.intake``; ``records`` is what the
    command says about them (the patient of files that do not name theirs),
    and a sidecar ``NAME.EXT.json`` next to a file overrides it for that file.
    """
    report = ImportReport()
    sidecars: dict[str, SourceItem] = {}
    if placement.collection == QUARANTINE:
        items, sidecars = _split_sidecars(items)
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
                data = _wrap_record(data, item.label, records, sidecars.get(item.label))
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


def _split_sidecars(items: list[SourceItem]) -> tuple[list[SourceItem], dict[str, SourceItem]]:
    """Files and the sidecars of files (``scan.pdf.json`` next to ``scan.pdf``)."""
    labels = {item.label for item in items}
    sidecars = {
        item.label[: -len(".json")]: item
        for item in items
        if item.label.endswith(".json") and item.label[: -len(".json")] in labels
    }
    taken = {id(s) for s in sidecars.values()}
    return [item for item in items if id(item) not in taken], sidecars


def _wrap_record(
    data: bytes, label: str, given: Intake | None, sidecar: SourceItem | None
) -> bytes:
    """Record files enter a site's quarantine as DICOM wrappers (``records.intake``).

    HL7 v2 and FHIR name their patient; PDF, text and video need one from the
    command or a sidecar, else they are refused naming the file. DICOM and
    what is no record are passed on as they are (the store path judges them).
    """
    if len(data) > 132 and data[128:132] == b"DICM":
        return data
    from trialpacs.errors import InvalidInput
    from trialpacs.records.formats import RecordFormat, detect_format
    from trialpacs.records.intake import Intake, wrap_record
    from trialpacs.records.sidecar import read_sidecar, sidecar_name

    try:
        fmt = detect_format(data, label)
    except TrialpacsError:
        return data
    intake = given or Intake()
    if sidecar is not None:
        intake = read_sidecar(sidecar.read(), sidecar.label, intake)
    if intake.patient is None and fmt in (
        RecordFormat.PDF, RecordFormat.TEXT, RecordFormat.VIDEO
    ):
        name = label.rsplit("/", 1)[-1]
        raise InvalidInput(
            f"{name}: a {fmt.value} record does not name its patient; give --patient-id "
            f"(and --patient-name, --birth-date) or a sidecar {sidecar_name(name)}"
        )
    return wrap_record(data, label, intake)[1]


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
