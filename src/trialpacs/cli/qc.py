"""``trialpacs qc scan|queue``: anatomy QC of a folder, and the server's QC queue."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from trialpacs.access.policy import Grant, Principal
from trialpacs.archive import Archive
from trialpacs.cli.archive import ConfigFile, DatabaseUrl, DataDir, settings_from
from trialpacs.qc import queue
from trialpacs.qc.fusion import Thresholds
from trialpacs.qc.scan import scan

console = Console()
errors = Console(stderr=True)


def register(app: typer.Typer) -> None:
    qc_app = typer.Typer(help="Anatomy quality control.", no_args_is_help=True)
    qc_app.command("scan")(scan_cmd)
    qc_app.command("queue")(queue_cmd)
    app.add_typer(qc_app, name="qc")


def scan_cmd(
    path: Annotated[Path, typer.Argument(help="A DICOM file or a folder: one batch.")],
    expect: Annotated[
        list[str], typer.Option("--expect", help="Expected anatomy (repeatable): SHOULDER, Knie…")
    ],
    modality: Annotated[
        list[str] | None, typer.Option("--modality", help="Expected modality (repeatable).")
    ] = None,
    hold: Annotated[float, typer.Option(help="Fused score at which a series is flagged.")] = 0.5,
    top: Annotated[int, typer.Option(help="Rows to print (0: all).")] = 0,
    accept_localizers: Annotated[
        bool, typer.Option(help="Do not flag localizers (scouts) as the wrong series.")
    ] = False,
) -> None:
    """Rank the series under PATH by how unlikely they show the expected anatomy."""
    try:
        with Progress(console=errors, transient=True) as progress:
            task = progress.add_task("reading series", total=None)
            rows = scan(
                path,
                expect,
                modalities=modality or (),
                thresholds=Thresholds(hold=hold, accept_localizers=accept_localizers),
                progress=lambda n, total: progress.update(task, completed=n, total=total),
            )
    except (FileNotFoundError, ValueError) as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    table = Table(title=f"anatomy QC of {path} (expected: {', '.join(expect)})")
    for col in ("rank", "verdict", "score", "metadata", "image", "series", "files", "reasons"):
        table.add_column(col, overflow="fold")
    shown = rows[:top] if top else rows
    for rank, row in enumerate(shown, start=1):
        r = row.result
        image = "-" if r.image is None or r.image.score is None else f"{r.image.score:.2f}"
        verdict = "[red]FLAG[/red]" if r.status == "hold" else "ok"
        table.add_row(
            str(rank), verdict, f"{r.score:.2f}", r.metadata.status, image,
            f"{row.folder} {row.modality} {row.stratum}", str(row.files), "; ".join(r.reasons),
        )  # fmt: skip
    console.print(table)
    flagged = sum(1 for r in rows if r.result.status == "hold")
    console.print(f"{len(rows)} series, {flagged} flagged")


def queue_cmd(
    trial: Annotated[str | None, typer.Option(help="Only this trial.")] = None,
    config: ConfigFile = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """List the series held by QC (administrator view, from the server's database)."""
    archive = Archive.open(settings_from(config, data_dir=data_dir, database_url=database_url))
    try:
        operator = Principal(getpass.getuser(), kind="service", grants=(Grant("administrator"),))
        items = queue.list_queue(archive, operator, trial)
    finally:
        archive.close()
    table = Table(title="QC queue")
    for col in ("series", "trial/site", "subject", "modality", "received", "reasons"):
        table.add_column(col, overflow="fold")
    for i in items:
        table.add_row(
            i.series_uid, f"{i.trial}/{i.site}", i.subject, i.modality, i.received,
            "; ".join(i.reasons),
        )  # fmt: skip
    console.print(table)
