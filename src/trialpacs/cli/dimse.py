"""DICOM network commands: ``send``, ``echo`` and the known-AE table (``ae``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from trialpacs.archive import Archive
from trialpacs.cli.archive import ConfigFile, DatabaseUrl, DataDir, settings_from
from trialpacs.errors import TrialpacsError

console = Console(stderr=True)

CallingAE = Annotated[
    str | None,
    typer.Option("--ae-title", help="Our (calling) AE title. Default: the ae_title setting."),
]
Peer = Annotated[str, typer.Argument(help="The peer as AE@host:port.", metavar="AE@HOST:PORT")]


def register(app: typer.Typer) -> None:
    app.command("send")(send)
    app.command("echo")(echo)
    ae_app = typer.Typer(
        help="Known remote DICOM AEs: only these may associate, and C-MOVE sends only to them.",
        no_args_is_help=True,
    )
    ae_app.command("add")(ae_add)
    ae_app.command("list")(ae_list)
    ae_app.command("remove")(ae_remove)
    app.add_typer(ae_app, name="ae")


def _our_title(ae_title: str | None, config: Path | None = None) -> str:
    return ae_title or settings_from(config).ae_title


def echo(peer: Peer, ae_title: CallingAE = None, config: ConfigFile = None) -> None:
    """C-ECHO a DICOM peer; exits 1 if it does not answer with success."""
    from trialpacs.dimse.remote_aes import parse_address
    from trialpacs.dimse.scu import PeerError
    from trialpacs.dimse.scu import echo as do_echo

    try:
        title, host, port = parse_address(peer)
        code = do_echo(_our_title(ae_title, config), title, host, port)
    except (TrialpacsError, PeerError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    if code != 0:
        console.print(f"[red]C-ECHO status 0x{code:04X}[/red]")
        raise typer.Exit(1)
    print(f"C-ECHO {title}@{host}:{port}: success")


def send(
    paths: Annotated[list[Path], typer.Argument(help="DICOM files or folders.")],
    to: Annotated[str, typer.Option("--to", help="The peer as AE@host:port.")],
    ae_title: CallingAE = None,
    config: ConfigFile = None,
) -> None:
    """C-STORE files and folders to a DICOM peer, with a progress bar.

    Exits 1 if any file was not stored (each is listed with the peer's reason).
    """
    from trialpacs.dimse.remote_aes import parse_address
    from trialpacs.dimse.scu import PeerError, collect_files
    from trialpacs.dimse.scu import send as do_send

    try:
        title, host, port = parse_address(to)
        collected = collect_files(paths)
    except TrialpacsError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    with Progress(
        TextColumn("[bold]sending"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not sys.stderr.isatty(),
    ) as progress:
        files = collected.files
        task = progress.add_task("send", total=len(files))
        try:
            report = do_send(
                _our_title(ae_title, config),
                title,
                host,
                port,
                files,
                progress=lambda _info, _err: progress.advance(task),
            )
        except PeerError as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from None
    print(f"sent {report.sent} of {len(files)} DICOM file(s) to {title}@{host}:{port}")
    if collected.ignored:
        print(f"ignored {collected.ignored} non-DICOM file(s) found in folders")
    for path, reason in [*collected.refused, *report.failed]:
        console.print(f"[red]not sent[/red] {path}: {reason}", soft_wrap=True)
    if report.failed or collected.refused:
        raise typer.Exit(1)


def ae_add(
    title: Annotated[str, typer.Argument(help="The remote AE title.")],
    host: Annotated[str, typer.Argument(help="Its host (address or name).")],
    port: Annotated[int, typer.Argument(help="Its DICOM port (for C-MOVE and reports).")],
    site: Annotated[str | None, typer.Option("--site", help="The site it belongs to.")] = None,
    grant: Annotated[
        list[str] | None,
        typer.Option(
            "--grant",
            help="What it may query/retrieve, e.g. reader@T1 (repeatable). Without one an AE "
            "reads nothing; a site's AE may still store to its site.",
        ),
    ] = None,
    data_dir: DataDir = None,
    config: ConfigFile = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Add a known remote AE."""
    from trialpacs.dimse import peers, remote_aes

    archive = Archive.open(settings_from(config, data_dir=data_dir, database_url=database_url))
    try:
        for text in grant or []:
            peers.check_grant(title, text)
        known = remote_aes.add(archive.db, title, host, port, site)
        peers.forget(archive.db, known.ae_title)
        for text in grant or []:
            peers.grant(archive.db, known.ae_title, text)
    except TrialpacsError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    finally:
        archive.close()
    print(f"added {known.ae_title} at {known.host}:{known.port}")


def ae_list(
    data_dir: DataDir = None,
    config: ConfigFile = None,
    database_url: DatabaseUrl = None,
) -> None:
    """List the known remote AEs."""
    from trialpacs.dimse import peers, remote_aes

    archive = Archive.open(settings_from(config, data_dir=data_dir, database_url=database_url))
    try:
        known = remote_aes.list_all(archive.db)
        grants = {ae.ae_title: peers.grants_of(archive.db, ae.ae_title) for ae in known}
    finally:
        archive.close()
    table = Table(title="known remote AEs")
    for column in ("AE title", "host", "port", "site", "grants"):
        table.add_column(column)
    for ae in known:
        shown = " ".join(str(g) for g in grants[ae.ae_title])
        table.add_row(ae.ae_title, ae.host, str(ae.port), ae.site or "", shown)
    Console(width=200).print(table)


def ae_remove(
    title: Annotated[str, typer.Argument(help="The remote AE title.")],
    data_dir: DataDir = None,
    config: ConfigFile = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Remove a known remote AE (and its grants)."""
    from trialpacs.dimse import peers, remote_aes

    archive = Archive.open(settings_from(config, data_dir=data_dir, database_url=database_url))
    try:
        remote_aes.remove(archive.db, title)
        peers.forget(archive.db, title)
    except TrialpacsError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    finally:
        archive.close()
    print(f"removed {title.strip()}")
