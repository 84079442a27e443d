"""Operations commands: backup and restore (docs/operations.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from trialpacs.archive import Archive
from trialpacs.audit.chain import AuditEvent, record
from trialpacs.cli.archive import ConfigFile, DatabaseUrl, DataDir, settings_from
from trialpacs.ops.backup import BackupError, Report, backup, restore

console = Console(stderr=True)
STAGES = {
    "index": "index rows",
    "blobs": "blobs",
    "files": "secrets and key vault",
    "check": "checking the backup",
    "verify": "verifying the restore",
}


def register(app: typer.Typer) -> None:
    app.command("backup")(backup_cmd)
    app.command("restore")(restore_cmd)


class _Bars:
    """Rich progress bars, one per stage, fed by the domain's progress callback."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, stage: str, advance: int, total: int | None) -> None:
        task = self.tasks.get(stage)
        if task is None:
            task = self.progress.add_task(STAGES.get(stage, stage), total=total)
            self.tasks[stage] = task
        elif total is not None:
            self.progress.update(task, total=total)
        self.progress.advance(task, advance)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<24}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def _summary(verb: str, report: Report) -> None:
    rows = sum(report.tables.values())
    console.print(
        f"[green]{verb}[/green] {rows:,} index rows in {len(report.tables)} tables "
        f"({report.audit_entries:,} audit entries), {report.blobs:,} blobs "
        f"({report.blob_bytes / 1e6:,.1f} MB), files: {', '.join(report.files) or 'none'}",
        soft_wrap=True,
    )


def backup_cmd(
    dest: Annotated[Path, typer.Argument(help="New (or empty) directory for the backup.")],
    data_dir: DataDir = None,
    config: ConfigFile = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Back up the index (audit trail included), every storage backend, the secrets and
    the key vault into DEST; every file gets a SHA-256 in DEST/manifest.json."""
    archive = Archive.open(settings_from(config, data_dir=data_dir, database_url=database_url))
    try:
        # Recorded first, so the backup's own trail shows that it was taken.
        record(archive.db, AuditEvent(action="backup.create", outcome="success", actor="cli",
                                      object=str(dest)[:256]))  # fmt: skip
        with _progress() as progress:
            report = backup(archive, dest, _Bars(progress))
    except BackupError as exc:
        console.print(f"[red]backup refused:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(1) from None
    finally:
        archive.close()
    _summary("Backed up", report)


def restore_cmd(
    source: Annotated[Path, typer.Argument(help="A directory made by `trialpacs backup`.")],
    data_dir: DataDir = None,
    config: ConfigFile = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Restore a backup into an empty deployment (new database, new data directory),
    then verify it: the audit chain, every blob's SHA-256, every instance's content.

    The whole backup is checked before anything is written; exit status 1 when
    the backup is refused or the restored deployment does not verify.
    """
    archive = Archive.open(settings_from(config, data_dir=data_dir, database_url=database_url))
    try:
        with _progress() as progress:
            report = restore(archive, source, _Bars(progress))
        outcome = "failure" if report.problems else "success"
        record(archive.db, AuditEvent(action="backup.restore", outcome=outcome, actor="cli",
                                      object=str(source)[:256]))  # fmt: skip
    except BackupError as exc:
        console.print(f"[red]restore refused:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(1) from None
    finally:
        archive.close()
    _summary("Restored", report)
    if report.problems:
        for problem in report.problems[:50]:
            console.print(f"[red]✗[/red] {problem}", soft_wrap=True)
        console.print(f"[red]{len(report.problems)} problem(s) after restore[/red]")
        raise typer.Exit(1)
    console.print("[green]✓[/green] audit chain intact, every blob and instance verified")
