"""``trialpacs cohort save|list|preview`` and ``trialpacs export COHORT --to DEST | history``.

The CLI acts as a person, not as the machine: ``--token`` (an API key or
access token, env ``TRIALPACS_TOKEN``) or ``--user`` (a local account) gives
the grants the policy decides on, exactly as the HTTP API would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from trialpacs.access.authenticator import Authenticator
from trialpacs.access.policy import Principal
from trialpacs.access.users import get_user, principal_for
from trialpacs.archive import Archive
from trialpacs.cli.archive import ConfigFile, DatabaseUrl, DataDir, settings_from
from trialpacs.errors import TrialpacsError
from trialpacs.exports import links
from trialpacs.exports.cohort import CohortDefinition
from trialpacs.exports.destinations import DOWNLOAD
from trialpacs.exports.governance import may_export_trial, require_sites, require_trial
from trialpacs.exports.job import ExportOptions, export_history, load_cohort, run_export
from trialpacs.exports.saved import list_cohorts, save_cohort
from trialpacs.exports.select import counts, resolve
from trialpacs.trials import catalog

console = Console(stderr=True)

Token = Annotated[
    str | None,
    typer.Option("--token", envvar="TRIALPACS_TOKEN", help="API key or access token to act as."),
]
User = Annotated[str | None, typer.Option("--user", help="Local account to act as.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
Many = Annotated[list[str] | None, typer.Option(help="May be repeated.")]


def register(app: typer.Typer) -> None:
    cohort_app = typer.Typer(help="Saved cohorts of de-identified series.", no_args_is_help=True)
    cohort_app.command("save")(save_cmd)
    cohort_app.command("list")(list_cmd)
    cohort_app.command("preview")(preview_cmd)
    app.add_typer(cohort_app, name="cohort")
    app.command("export")(export_cmd)


def _open(config: Path | None, data_dir: Path | None, database_url: str | None) -> Archive:
    return Archive.open(settings_from(config, data_dir=data_dir, database_url=database_url))


def _principal(archive: Archive, token: str | None, user: str | None) -> Principal:
    if token:
        principal = Authenticator(archive.db, archive.settings).from_bearer(token)
        if principal is None:
            raise _fail("the token is not valid (expired, revoked or unknown)")
        return principal
    if user:
        with archive.db.read() as session:
            row = get_user(session, user)
            if row is None or row.disabled_at is not None:
                raise _fail(f"no active local account {user!r}")
            return principal_for(session, row)
    raise _fail("say who you are: --token (or TRIALPACS_TOKEN) or --user")


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def save_cmd(
    name: Annotated[str, typer.Argument(help="Cohort name; saving again makes a new version.")],
    trial: Annotated[str | None, typer.Option(help="Trial ID.")] = None,
    site: Many = None,
    subject: Many = None,
    timepoint: Many = None,
    modality: Many = None,
    body_part: Many = None,
    description: Annotated[
        str | None, typer.Option(help="SeriesDescription pattern, e.g. '*T1*'.")
    ] = None,
    qc: Annotated[list[str] | None, typer.Option(help="QC status: passed, not_checked.")] = None,
    days_min: Annotated[int | None, typer.Option(help="Days from baseline, at least.")] = None,
    days_max: Annotated[int | None, typer.Option(help="Days from baseline, at most.")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="YAML/JSON definition instead of options.")
    ] = None,
    token: Token = None,
    user: User = None,
    data_dir: DataDir = None,
    config: ConfigFile = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Save a cohort (a new version when the definition changed)."""
    archive = _open(config, data_dir, database_url)
    try:
        principal = _principal(archive, token, user)
        if file is not None:
            mapping: dict[str, Any] = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        else:
            mapping = {
                "trial": trial,
                "sites": site or [],
                "subjects": subject or [],
                "timepoints": timepoint or [],
                "modalities": modality or [],
                "body_parts": body_part or [],
                "series_description": description,
                "qc_status": qc or [],
                "days_from_baseline_min": days_min,
                "days_from_baseline_max": days_max,
            }
            if trial is None:
                raise _fail("--trial is required (or --file)")
        definition = CohortDefinition.from_mapping(mapping)
        require_trial(principal, definition.trial)
        if catalog.get_trial(archive.db, definition.trial) is None:
            raise _fail(f"no trial {definition.trial!r}")
        saved = save_cohort(archive.db, name, definition, principal.subject)
        typer.echo(
            f"saved {saved.ref} (trial {saved.definition.trial}, digest {saved.digest[:12]})"
        )
    except TrialpacsError as exc:
        raise _fail(str(exc)) from exc
    finally:
        archive.close()


def list_cmd(
    all_versions: Annotated[bool, typer.Option("--all-versions")] = False,
    as_json: AsJson = False,
    token: Token = None,
    user: User = None,
    data_dir: DataDir = None,
    config: ConfigFile = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Saved cohorts of the trials you may export."""
    archive = _open(config, data_dir, database_url)
    try:
        principal = _principal(archive, token, user)
        found = [
            c
            for c in list_cohorts(archive.db, all_versions=all_versions)
            if may_export_trial(principal, c.definition.trial)
        ]
        if as_json:
            typer.echo(json.dumps([c.to_mapping() for c in found], indent=2))
            return
        table = Table("cohort", "trial", "by", "saved", "definition")
        for c in found:
            d = {k: v for k, v in c.definition.to_mapping().items() if v not in (None, [])}
            d.pop("trial", None)
            table.add_row(
                c.ref,
                c.definition.trial,
                c.created_by,
                c.created_at.isoformat()[:19],
                json.dumps(d),
            )
        Console().print(table)
    finally:
        archive.close()


def preview_cmd(
    cohort: Annotated[str, typer.Argument(help="NAME or NAME@VERSION.")],
    as_json: AsJson = False,
    token: Token = None,
    user: User = None,
    data_dir: DataDir = None,
    config: ConfigFile = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Counts of what an export of the cohort would hold."""
    archive = _open(config, data_dir, database_url)
    try:
        principal = _principal(archive, token, user)
        saved = load_cohort(archive, principal, cohort)
        series = resolve(archive, saved.definition)
        require_sites(principal, saved.definition.trial, {s.site_id for s in series})
        c = counts(series)
        if as_json:
            typer.echo(json.dumps({"cohort": saved.ref, "counts": c.to_mapping()}, indent=2))
            return
        typer.echo(
            f"{saved.ref}: {c.series} series, {c.instances} instances, {c.studies} studies, "
            f"{c.subjects} subjects, {c.bytes / 1e6:.1f} MB"
        )
        for title, table in (("site", c.by_site), ("modality", c.by_modality),
                             ("time point", c.by_timepoint)):  # fmt: skip
            typer.echo(f"  per {title}: " + ", ".join(f"{k} {v}" for k, v in table.items()))
    except TrialpacsError as exc:
        raise _fail(str(exc)) from exc
    finally:
        archive.close()


def export_cmd(
    cohort: Annotated[str, typer.Argument(help="NAME or NAME@VERSION, or 'history'.")],
    to: Annotated[
        str | None, typer.Option("--to", help="Directory, s3://bucket/prefix or download.")
    ] = None,
    nifti: Annotated[bool, typer.Option("--nifti", help="Add NIfTI volumes (dcm2niix).")] = False,
    as_json: AsJson = False,
    token: Token = None,
    user: User = None,
    data_dir: DataDir = None,
    config: ConfigFile = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Export a saved cohort as a dataset package; `export history` lists past exports.

    Running the same export again resumes it: files already at the destination
    with the right checksum are skipped.
    """
    archive = _open(config, data_dir, database_url)
    try:
        principal = _principal(archive, token, user)
        if cohort == "history":
            _history(archive, principal, as_json)
            return
        if not to:
            raise _fail("--to is required: a directory, s3://bucket/prefix or download")
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console, transient=as_json) as bar:
            tasks: dict[str, Any] = {}

            def progress(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total)
                bar.update(tasks[stage], completed=done, total=total)

            result = run_export(
                archive, principal, cohort, to, ExportOptions(nifti=nifti), progress=progress
            )
        if as_json:
            typer.echo(json.dumps(result.to_mapping(), indent=2))
            return
        typer.echo(
            f"exported {result.cohort}: {result.series} series, {result.instances} instances, "
            f"{result.bytes / 1e6:.1f} MB to {result.destination} in {result.seconds:.1f} s "
            f"({result.files_written} files written, {result.files_skipped} already there); "
            f"export {result.export_id}"
        )
        if result.destination_kind == DOWNLOAD:
            signer = Authenticator(archive.db, archive.settings).signer
            link = links.issue(signer, result.export_id, principal.subject)
            base = (archive.settings.public_base_url or "").rstrip("/")
            typer.echo(
                f"download (valid {link.expires_in // 60} min): "
                f"{base}/api/exports/{result.export_id}/download?token={link.token}"
            )
        for problem in result.nifti_problems:
            typer.echo(f"  NIfTI left out: {problem}")
    except TrialpacsError as exc:
        raise _fail(str(exc)) from exc
    finally:
        archive.close()


def _history(archive: Archive, principal: Principal, as_json: bool) -> None:
    trials = [t.trial_id for t in catalog.all_trials(archive.db)]
    allowed = None if principal.is_global_admin() else [
        t for t in trials if may_export_trial(principal, t)
    ]  # fmt: skip
    rows = export_history(archive, allowed)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("when", "who", "cohort", "state", "series", "instances", "MB", "to")
    for r in rows:
        table.add_row(
            r["created_at"][:19], r["actor"], r["cohort"], r["state"], str(r["series"]),
            str(r["instances"]), f"{r['bytes'] / 1e6:.1f}", r["destination"],
        )  # fmt: skip
    Console().print(table)
