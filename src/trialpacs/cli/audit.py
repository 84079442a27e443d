"""``trialpacs audit verify|list|export|checkpoint``: the monitor's and the inspector's view.

Reading the trail is itself audited (``audit.read`` / ``audit.export``), with
the operating-system user as actor, since the CLI has no signed-in identity.
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from trialpacs.archive import Archive
from trialpacs.audit import checkpoints, exports
from trialpacs.audit.chain import AuditEvent, Filter, query, record, verify
from trialpacs.cli.archive import ConfigFile, DatabaseUrl, DataDir, settings_from

console = Console(stderr=True)

User = Annotated[str | None, typer.Option("--user", help="Actor (user name).")]
Trial = Annotated[str | None, typer.Option("--trial")]
Site = Annotated[str | None, typer.Option("--site")]
Action = Annotated[str | None, typer.Option("--action", help="Action; * matches anything.")]
Obj = Annotated[str | None, typer.Option("--object", help="Study/series/SOP UID or object.")]
Since = Annotated[str | None, typer.Option("--since", help="ISO date/time (UTC), inclusive.")]
Until = Annotated[str | None, typer.Option("--until", help="ISO date/time (UTC), exclusive.")]


def register(app: typer.Typer) -> None:
    audit_app = typer.Typer(help="Audit trail: verify, list, export.", no_args_is_help=True)
    audit_app.command("verify")(verify_cmd)
    audit_app.command("list")(list_cmd)
    audit_app.command("export")(export_cmd)
    audit_app.command("checkpoint")(checkpoint_cmd)
    audit_app.command("forward")(forward_cmd)
    app.add_typer(audit_app, name="audit")


def _open(config: Path | None, data_dir: Path | None, database_url: str | None) -> Archive:
    return Archive.open(settings_from(config, data_dir=data_dir, database_url=database_url))


def _os_user() -> str:
    try:
        return f"os:{getpass.getuser()}"
    except (KeyError, OSError):
        return "os:unknown"


def verify_cmd(
    data_dir: DataDir = None,
    config: ConfigFile = None,
    database_url: DatabaseUrl = None,
    public_key: Annotated[
        str | None, typer.Option("--public-key", help="Trusted checkpoint key (hex).")
    ] = None,
) -> None:
    """Prove the chain intact (exit 0) or name the first broken entry (exit 1)."""
    archive = _open(config, data_dir, database_url)
    try:
        result = verify(archive.db)
        problems = checkpoints.check(archive.db, public_key)
        if result.broken is not None:
            typer.echo(f"BROKEN at entry {result.broken.seq}: {result.broken.reason}")
        for p in problems:
            typer.echo(f"BROKEN {p}")
        if result.broken is not None or problems:
            raise typer.Exit(1)
        typer.echo(f"OK: {result.entries} entries, head {result.last_hash}")
        record(archive.db, AuditEvent(action="audit.verify", actor=_os_user(), agent="cli"))
    finally:
        archive.close()


def list_cmd(
    user: User = None,
    trial: Trial = None,
    site: Site = None,
    action: Action = None,
    obj: Obj = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, typer.Option("--limit")] = 100,
    data_dir: DataDir = None,
    config: ConfigFile = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Entries matching the filters, oldest first."""
    archive = _open(config, data_dir, database_url)
    try:
        flt = Filter(user, trial, site, action, obj, since, until, limit)
        rows = query(archive.db, flt)
        for e in rows:
            what = " ".join(x for x in (e["trial"], e["site"], e["study"], e["object"]) if x)
            typer.echo(
                f"{e['seq']:>8} {e['at']} {e['actor'] or '-'} {e['action']} {e['outcome']} {what}"
            )
        record(
            archive.db,
            AuditEvent(action="audit.read", actor=_os_user(), agent="cli", detail=_flt_detail(flt)),
        )
    finally:
        archive.close()


def _flt_detail(flt: Filter) -> dict[str, object]:
    return {k: v for k, v in vars(flt).items() if v is not None}


def export_cmd(
    fmt: Annotated[str, typer.Option("--format", help="csv, json, fhir or atna.")] = "json",
    output: Annotated[Path | None, typer.Option("-o", "--output")] = None,
    user: User = None,
    trial: Trial = None,
    site: Site = None,
    action: Action = None,
    obj: Obj = None,
    since: Since = None,
    until: Until = None,
    data_dir: DataDir = None,
    config: ConfigFile = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Export matching entries (and, as JSON, the signed checkpoints with --format checkpoints)."""
    writers = {
        "csv": exports.to_csv,
        "json": exports.to_json,
        "fhir": exports.to_fhir_bundle,
        "atna": exports.to_atna_xml,
    }
    if fmt not in writers and fmt != "checkpoints":
        console.print(
            f"[red]error:[/red] unknown format {fmt!r}: csv, json, fhir, atna, checkpoints"
        )
        raise typer.Exit(2)
    archive = _open(config, data_dir, database_url)
    try:
        flt = Filter(user, trial, site, action, obj, since, until)
        if fmt == "checkpoints":
            text = json.dumps(checkpoints.export(archive.db), indent=2)
        else:
            text = writers[fmt](query(archive.db, flt))
        record(
            archive.db,
            AuditEvent(
                action="audit.export",
                actor=_os_user(),
                agent="cli",
                detail={"format": fmt, **_flt_detail(flt)},
            ),
        )
    finally:
        archive.close()
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")


def checkpoint_cmd(
    data_dir: DataDir = None,
    config: ConfigFile = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Sign the current chain head with the Ed25519 key in the data directory."""
    settings = settings_from(config, data_dir=data_dir, database_url=database_url)
    archive = Archive.open(settings)
    try:
        cp = checkpoints.checkpoint(archive.db, settings.data_dir)
    finally:
        archive.close()
    typer.echo(json.dumps(cp, indent=2))


def forward_cmd(
    host: Annotated[str, typer.Option("--host", help="Syslog collector host.")],
    port: Annotated[int, typer.Option("--port")] = 6514,
    tls: Annotated[bool, typer.Option("--tls/--no-tls")] = True,
    ca_file: Annotated[str | None, typer.Option("--ca-file")] = None,
    data_dir: DataDir = None,
    config: ConfigFile = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Send entries not yet forwarded (RFC 5424, octet counting); run from cron or a timer."""
    from trialpacs.audit.syslog import Collector, forward

    settings = settings_from(config, data_dir=data_dir, database_url=database_url)
    archive = Archive.open(settings)
    try:
        sent = forward(archive.db, settings.data_dir, Collector(host, port, tls, ca_file))
    except OSError as exc:
        console.print(f"[red]collector unreachable:[/red] {exc}; entries stay queued")
        raise typer.Exit(1) from None
    finally:
        archive.close()
    typer.echo(f"forwarded {sent} entries")
