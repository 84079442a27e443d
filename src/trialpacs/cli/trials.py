"""Trial commands: plan, apply, export-config, status, worker, pipeline retry."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from trialpacs.archive import Archive
from trialpacs.cli.archive import ConfigFile, DatabaseUrl, DataDir, settings_from

console = Console(stderr=True)
out = Console()

ConfigYaml = Annotated[Path, typer.Argument(help="Trials configuration (YAML).")]


def register(app: typer.Typer) -> None:
    app.command("plan")(plan_cmd)
    app.command("apply")(apply_cmd)
    app.command("export-config")(export_cmd)
    app.command("status")(status_cmd)
    app.command("worker")(worker_cmd)
    pipeline_app = typer.Typer(help="Pipeline maintenance.", no_args_is_help=True)
    pipeline_app.command("retry")(retry_cmd)
    app.add_typer(pipeline_app, name="pipeline")


def _load(archive: Archive, file: Path) -> object:
    from trialpacs.config import ConfigError, load_file

    try:
        return load_file(
            file, server_region=archive.settings.region, server_ae=archive.settings.ae_title
        )
    except ConfigError as exc:
        for problem in exc.problems:
            console.print(f"[red]error:[/red] {problem}", soft_wrap=True, markup=False)
        raise typer.Exit(2) from None


def plan_cmd(
    file: ConfigYaml,
    data_dir: DataDir = None,
    config: ConfigFile = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Show what `trialpacs apply FILE` would change (exit 0: nothing, 3: changes)."""
    from trialpacs.config import ConfigDoc, plan

    archive = Archive.open(settings_from(config, data_dir=data_dir, database_url=database_url))
    try:
        doc = _load(archive, file)
        assert isinstance(doc, ConfigDoc)
        changes = plan(archive, doc)
    finally:
        archive.close()
    if not changes:
        out.print("no changes")
        return
    for change in changes:
        out.print(str(change), markup=False, soft_wrap=True)
    out.print(f"{len(changes)} change(s)")
    raise typer.Exit(3)


def _os_user() -> str:
    import getpass

    try:
        return f"os:{getpass.getuser()}"
    except (KeyError, OSError):
        return "os:unknown"


def apply_cmd(
    file: ConfigYaml,
    data_dir: DataDir = None,
    config: ConfigFile = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Make trials, sites, AEs, regions, backends, profiles and roles match FILE."""
    from trialpacs.config import ConfigDoc, ConfigError, apply

    archive = Archive.open(settings_from(config, data_dir=data_dir, database_url=database_url))
    try:
        doc = _load(archive, file)
        assert isinstance(doc, ConfigDoc)
        changes = apply(archive, doc, str(file), actor=_os_user())
    except ConfigError as exc:
        for problem in exc.problems:
            console.print(f"[red]error:[/red] {problem}", soft_wrap=True, markup=False)
        raise typer.Exit(2) from None
    finally:
        archive.close()
    for change in changes:
        out.print(str(change), markup=False, soft_wrap=True)
    out.print(f"applied {len(changes)} change(s)" if changes else "no changes")


def export_cmd(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here (default: stdout).")
    ] = None,
    data_dir: DataDir = None,
    config: ConfigFile = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Write the current trials configuration as YAML (round-trips through apply)."""
    from trialpacs.config import export_yaml

    archive = Archive.open(settings_from(config, data_dir=data_dir, database_url=database_url))
    try:
        text = export_yaml(archive)
    finally:
        archive.close()
    if output is None:
        print(text, end="")
    else:
        output.write_text(text, encoding="utf-8")


def status_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    data_dir: DataDir = None,
    config: ConfigFile = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Per trial and site: received, in progress, published, held for QC, needing attention,
    without a visit; and data that matched no trial, per site."""
    from trialpacs.pipeline.status import pipeline_status

    archive = Archive.open(settings_from(config, data_dir=data_dir, database_url=database_url))
    try:
        status = pipeline_status(archive)
    finally:
        archive.close()
    if as_json:
        print(json.dumps(status, indent=2))
        return
    table = Table(title="pipeline status")
    cols = [
        ("trial", "trial"),
        ("site", "site"),
        ("received (inst)", "received_instances"),
        ("waiting", "waiting_series"),
        ("in progress", "in_progress_series"),
        ("published", "published_series"),
        ("published (inst)", "published_instances"),
        ("held QC", "held_qc_series"),
        ("attention", "needs_attention_series"),
        ("no visit", "unassigned_timepoint_series"),
    ]
    for title, _ in cols:
        table.add_column(title, justify="left" if title in ("trial", "site") else "right")
    for row in status["trials"]:
        table.add_row(*(str(row[key]) for _, key in cols))
    out.print(table)
    un = status["unassigned"]
    out.print(f"unassigned: {un['series']} series, {un['instances']} instances (never published)")
    for site, n in sorted(un["by_site"].items()):
        out.print(
            f"  from {site or 'an unknown caller'}: "
            f"{n['series']} series, {n['instances']} instances"
        )
    for row in status["trials"]:
        if row["timepoints"]:
            visits = ", ".join(
                f"{tp or '(none)'}: {n}" for tp, n in sorted(row["timepoints"].items())
            )
            out.print(f"{row['trial']}/{row['site']} series by visit: {visits}", soft_wrap=True)
    for item in status["attention"]:
        out.print(
            f"[yellow]{item['state']}[/yellow] {item['trial']}/{item['site']} "
            f"series {item['series']}: {item['reason']}",
            soft_wrap=True,
        )


def worker_cmd(
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", help="Worker processes.")] = 2,
    pool: Annotated[str, typer.Option("--pool", help="prefork, threads or solo.")] = "prefork",
    broker: Annotated[
        str | None, typer.Option("--broker", help="Celery broker URL (Redis or RabbitMQ).")
    ] = None,
    data_dir: DataDir = None,
    config: ConfigFile = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Run Celery pipeline workers (the server dispatches when pipeline_executor=celery)."""
    from trialpacs.pipeline.celery_app import run_worker

    # Worker processes read their settings from the environment after the fork.
    for name, value in (
        ("TRIALPACS_DATA_DIR", data_dir),
        ("TRIALPACS_CONFIG", config),
        ("TRIALPACS_DATABASE_URL", database_url),
        ("TRIALPACS_CELERY_BROKER_URL", broker),
    ):
        if value is not None:
            os.environ[name] = str(Path(value).resolve() if isinstance(value, Path) else value)
    settings = settings_from(config)
    Archive.open(settings).close()  # migrate once, before the workers start
    run_worker(settings, concurrency, pool)


def retry_cmd(
    series: Annotated[str, typer.Argument(help="Series Instance UID (identified).")],
    data_dir: DataDir = None,
    config: ConfigFile = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Send a series that needs attention or is held for QC through the pipeline again."""
    from trialpacs.pipeline.scheduler import retry_series

    archive = Archive.open(settings_from(config, data_dir=data_dir, database_url=database_url))
    try:
        ok = retry_series(archive, series)
    finally:
        archive.close()
    if not ok:
        console.print(f"[red]error:[/red] series {series} is not in the pipeline")
        raise typer.Exit(1)
    out.print(f"queued {series}")
