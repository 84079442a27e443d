"""Import files, folders and zips into the archive, reporting each outcome."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from trialpacs.archive import Archive
from trialpacs.errors import TrialpacsError
from trialpacs.ingest.sources import SourceItem, ZipLimits, iter_sources
from trialpacs.ingest.store import StoreStatus, store_bytes


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
) -> ImportReport:
    report = ImportReport()
    for item in items:
        try:
            outcome = store_bytes(archive, item.read())
        except TrialpacsError as exc:
            report.failed.append((item.label, str(exc)))
        except OSError as exc:
            report.failed.append((item.label, f"cannot read: {exc}"))
        else:
            report.bytes += outcome.size
            if outcome.status is StoreStatus.STORED:
                report.stored += 1
            elif outcome.status is StoreStatus.DUPLICATE:
                report.duplicates += 1
            else:
                report.replaced += 1
        if progress:
            progress(item)
    return report
