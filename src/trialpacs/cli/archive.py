"""Archive commands: serve, import, token, db."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from trialpacs.archive import Archive
from trialpacs.errors import TrialpacsError
from trialpacs.settings import Settings, load_settings

console = Console(stderr=True)

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data directory (index + blobs). Env: TRIALPACS_DATA_DIR."),
]
ConfigFile = Annotated[
    Path | None,
    typer.Option("--config", help="YAML settings file. Env: TRIALPACS_CONFIG.", exists=True),
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="Index database URL (default SQLite in the data dir; "
        "postgresql+psycopg://user@host/db for PostgreSQL). Env: TRIALPACS_DATABASE_URL.",
    ),
]


def settings_from(config: Path | None, **overrides: object) -> Settings:
    return load_settings(config, **overrides)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("import")(import_cmd)
    token_app = typer.Typer(help="Bearer tokens for the HTTP API.", no_args_is_help=True)
    token_app.command("create")(token_create)
    token_app.command("revoke")(token_revoke)
    app.add_typer(token_app, name="token")
    db_app = typer.Typer(help="Index database maintenance.", no_args_is_help=True)
    db_app.command("upgrade")(db_upgrade)
    db_app.command("current")(db_current)
    app.add_typer(db_app, name="db")


def serve(
    data_dir: DataDir = None,
    config: ConfigFile = None,
    database_url: DatabaseUrl = None,
    host: Annotated[str | None, typer.Option("--host", help="HTTP bind address.")] = None,
    http_port: Annotated[int | None, typer.Option("--http-port", help="HTTP port.")] = None,
    dicom_port: Annotated[
        int | None, typer.Option("--dicom-port", help="DICOM port (0 disables DIMSE).")
    ] = None,
    ae_title: Annotated[str | None, typer.Option("--ae-title", help="Our AE title.")] = None,
    demo: Annotated[
        bool,
        typer.Option("--demo", help="Load sample images into a demo trial and print a token."),
    ] = False,
    no_auth: Annotated[
        bool,
        typer.Option("--no-auth", help="Serve without tokens (loopback benchmarks only)."),
    ] = False,
    log_level: Annotated[str, typer.Option(help="Log level.")] = "info",
) -> None:
    """Run the DICOMweb server (and the DICOM listener)."""
    from trialpacs import server

    settings = settings_from(
        config,
        data_dir=data_dir,
        database_url=database_url,
        http_host=host,
        http_port=http_port,
        dicom_port=dicom_port,
        ae_title=ae_title,
        auth_enabled=False if no_auth else None,
    )
    if no_auth and settings.http_host not in ("127.0.0.1", "localhost", "::1"):
        console.print("[red]--no-auth is only allowed on a loopback address[/red]")
        raise typer.Exit(2)
    archive = Archive.open(settings)
    if demo:
        from trialpacs.demo import load_demo

        token = load_demo(archive)
        base = f"http://{settings.http_host}:{settings.http_port}"
        console.print(f"[green]Demo ready[/green] at {base}/dicomweb")
        console.print(
            "Sample images were sent identified to trial DEMO, site DEMO01; the pipeline "
            f"publishes them de-identified about {settings.series_settle_seconds:.0f} s "
            "after start (`trialpacs status`).",
            soft_wrap=True,
        )
        console.print(f"Token: [bold]{token}[/bold]", soft_wrap=True)
        console.print(f"Viewer: {base}/viewer/#token={token}", soft_wrap=True)
        console.print(
            f'Try: curl -H "Authorization: Bearer {token}" {base}/dicomweb/studies',
            soft_wrap=True,
        )
    server.run(archive, log_level=log_level)


def import_cmd(
    paths: Annotated[list[Path], typer.Argument(help="Files, folders or zip archives.")],
    data_dir: DataDir = None,
    config: ConfigFile = None,
    database_url: DatabaseUrl = None,
    trial: Annotated[
        str | None, typer.Option("--trial", help="Identified data of this trial (with --site).")
    ] = None,
    site: Annotated[str | None, typer.Option("--site", help="The sending site.")] = None,
    timepoint: Annotated[
        str | None,
        typer.Option("--timepoint", help="The visit (a time point of the trial) of these studies."),
    ] = None,
    patient_id: Annotated[
        str,
        typer.Option(
            "--patient-id",
            help="Patient of PDF, text and video files (HL7/FHIR name their own; a sidecar "
            "NAME.EXT.json next to a file names its own).",
        ),
    ] = "",
    patient_name: Annotated[
        str, typer.Option("--patient-name", help="Their name (FAMILY^GIVEN).")
    ] = "",
    birth_date: Annotated[
        str, typer.Option("--birth-date", help="Their birth date (YYYYMMDD).")
    ] = "",
    sex: Annotated[str, typer.Option("--sex", help="Their sex (M, F, O).")] = "",
    issuer: Annotated[
        str,
        typer.Option("--issuer", help="Issuer of the patient ID, as the site's PACS sends it."),
    ] = "",
) -> None:
    """Import DICOM files, folders and zip archives into the archive.

    Every file is validated as it would be over STOW-RS; a summary lists what
    was stored, what was already there and what was refused, and why. Exits
    with status 1 if anything was refused. With --trial and --site the files
    are identified data of that site: they go to its quarantine and through
    the pipeline, never straight to the published archive; --timepoint names
    their visit (otherwise the data or the trial's day windows decide).
    Record files (PDF, text, MP4/MOV video, HL7 v2, FHIR JSON) are wrapped as
    DICOM on the way in, like the upload route; PDF, text and video need
    --patient-id or a sidecar NAME.EXT.json ({"patient_id": ..., ...}).
    """
    from trialpacs.ingest.importer import collect, import_items
    from trialpacs.ingest.store import PUBLISHED, Placement
    from trialpacs.records.identity import PatientIdentity
    from trialpacs.records.intake import Intake

    if (trial is None) != (site is None):
        console.print("[red]error:[/red] --trial and --site go together")
        raise typer.Exit(2)
    if timepoint is not None and trial is None:
        console.print("[red]error:[/red] --timepoint needs --trial and --site")
        raise typer.Exit(2)
    given = [patient_id, patient_name, birth_date, sex, issuer]
    if any(given) and trial is None:
        console.print("[red]error:[/red] --patient-id and the like need --trial and --site")
        raise typer.Exit(2)
    if any(given) and not patient_id:
        console.print("[red]error:[/red] --patient-name, --birth-date, --sex, --issuer need "
                      "--patient-id")
        raise typer.Exit(2)
    try:
        records = Intake(
            PatientIdentity(patient_id, patient_name, birth_date, sex, issuer)
            if patient_id else None,
            time_point=timepoint or "",
        )
    except TrialpacsError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    settings = settings_from(config, data_dir=data_dir, database_url=database_url)
    archive = Archive.open(settings)
    placement: Placement = PUBLISHED
    try:
        if trial is not None and site is not None:
            from trialpacs.trials.intake import site_placement

            placement = site_placement(archive, trial, site, timepoint)
        items = collect(paths, archive)
    except TrialpacsError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    with Progress(
        TextColumn("[bold]importing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not sys.stderr.isatty(),
    ) as progress:
        task = progress.add_task("import", total=len(items))
        report = import_items(
            archive,
            items,
            lambda _: progress.advance(task),
            placement=placement,
            records=records,
        )
    archive.close()
    table = Table(title="import summary")
    table.add_column("outcome")
    table.add_column("files", justify="right")
    table.add_row("stored", str(report.stored))
    table.add_row("already stored (identical)", str(report.duplicates))
    if report.replaced:
        table.add_row("replaced", str(report.replaced))
    table.add_row("refused", str(len(report.failed)))
    Console().print(table)
    for label, reason in report.failed:
        Console().print(f"[red]refused[/red] {label}: {reason}", soft_wrap=True)
    if report.failed:
        raise typer.Exit(1)


def token_create(
    name: Annotated[str, typer.Option("--name", help="Who or what the token is for.")],
    role: Annotated[
        list[str] | None,
        typer.Option(
            "--role",
            help="Grant for a new service account: role, role@TRIAL or role@TRIAL/SITE "
            "(repeatable). Default: administrator (every trial).",
        ),
    ] = None,
    scope: Annotated[
        list[str] | None,
        typer.Option("--scope", help="What the key may be used for: dicomweb (default), "
        "workspace, admin, audit, export, metrics (repeatable)."),
    ] = None,
    data_dir: DataDir = None,
    config: ConfigFile = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create a service-account API key and print it (it is stored only as a hash)."""
    from trialpacs.access.apikeys import DEFAULT_SCOPES, create_key

    archive = Archive.open(settings_from(config, data_dir=data_dir, database_url=database_url))
    try:
        print(create_key(archive.db, name, grants=role or None, scopes=scope or DEFAULT_SCOPES))
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    finally:
        archive.close()


def token_revoke(
    name: Annotated[str, typer.Option("--name", help="Revoke every token with this name.")],
    data_dir: DataDir = None,
    config: ConfigFile = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Revoke tokens by name."""
    from trialpacs.access.tokens import revoke_token

    archive = Archive.open(settings_from(config, data_dir=data_dir, database_url=database_url))
    count = revoke_token(archive.db, name)
    archive.close()
    console.print(f"revoked {count} token(s)")


def db_upgrade(
    data_dir: DataDir = None,
    config: ConfigFile = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Apply index migrations up to the newest (also done at every start)."""
    from trialpacs.index.migrate import current

    archive = Archive.open(settings_from(config, data_dir=data_dir, database_url=database_url))
    console.print(f"index at revision {current(archive.db.engine)}")
    archive.close()


def db_current(
    data_dir: DataDir = None,
    config: ConfigFile = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Print the index schema revision without changing anything."""
    from trialpacs.index.db import Database
    from trialpacs.index.migrate import current

    settings = settings_from(config, data_dir=data_dir, database_url=database_url)
    db = Database(settings.resolved_database_url())
    print(current(db.engine) or "empty")
    db.dispose()
