"""De-identify many inputs into an output folder, all-or-nothing per input.

Output names come from the new UIDs only (study/series/instance), so nothing
of an input's file name or path ever reaches OUT. Each file is written to a
temporary name, fsynced and renamed, so a failure leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from trialpacs.deid.engine import Deidentifier
from trialpacs.deid.inputs import InputItem
from trialpacs.deid.pixel_hook import PixelCleanError
from trialpacs.errors import InvalidInput
from trialpacs.storage.atomic import write_atomic as _write_atomic


@dataclass
class BatchReport:
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    subjects: set[str] = field(default_factory=set)
    notes: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


def output_path(out: Path, study: str, series: str, sop: str) -> Path:
    return out / study / series / f"{sop}.dcm"


def write_atomic(path: Path, data: bytes) -> None:
    """A de-identified file appears whole and durable, or not at all."""
    _write_atomic(path, data, durable=True, prefix=".partial-")


def run_batch(
    deid: Deidentifier,
    items: Iterable[InputItem],
    out: Path,
    on_item: Callable[[InputItem, str | None], None] | None = None,
) -> BatchReport:
    """De-identify each item into ``out``; failures are collected, never raised."""
    report = BatchReport()
    out.mkdir(parents=True, exist_ok=True)
    for item in items:
        error: str | None = None
        try:
            data = item.read()
            new, result = deid.deidentify_part10(data)
            ds = result.dataset
            path = output_path(
                out, str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)
            )
            write_atomic(path, new)
            report.written.append(path)
            report.subjects.add(result.subject_id)
            for note in result.notes:
                report.notes[note] = report.notes.get(note, 0) + 1
        except PixelCleanError as exc:
            error = f"pixel cleaning failed: {exc}"
        except InvalidInput as exc:
            error = str(exc)
        except MemoryError:
            error = "out of memory while processing this input"
        except OSError as exc:
            error = f"I/O error: {exc}"
        if error is not None:
            report.failed.append((item.label, error))
        if on_item is not None:
            on_item(item, error)
    if deid.vault is not None:
        deid.vault.flush()
    return report
