"""Access commands: ``trialpacs user ...`` and ``trialpacs role ...``.

(``trialpacs token create`` for service accounts lives with the archive
commands, where the archive foundation put it.)
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from trialpacs.archive import Archive
from trialpacs.cli.archive import ConfigFile, DatabaseUrl, DataDir, settings_from

console = Console(stderr=True)
_T = TypeVar("_T")


def register(app: typer.Typer) -> None:
    user_app = typer.Typer(help="Accounts: add, disable, reset MFA, list.", no_args_is_help=True)
    user_app.command("add")(user_add)
    user_app.command("disable")(user_disable)
    user_app.command("enable")(user_enable)
    user_app.command("reset-mfa")(user_reset_mfa)
    user_app.command("password")(user_password)
    user_app.command("list")(user_list)
    app.add_typer(user_app, name="user")
    role_app = typer.Typer(help="Roles per trial and site.", no_args_is_help=True)
    role_app.command("grant")(role_grant)
    role_app.command("revoke")(role_revoke)
    app.add_typer(role_app, name="role")


def _run(
    config: Path | None,
    data_dir: Path | None,
    database_url: str | None,
    fn: Callable[[Archive], _T],
) -> _T:
    archive = Archive.open(settings_from(config, data_dir=data_dir, database_url=database_url))
    try:
        return fn(archive)
    except (ValueError, LookupError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    finally:
        archive.close()


def _password(prompt: bool) -> str | None:
    """From TRIALPACS_NEW_PASSWORD (scripts) or an interactive prompt, never argv."""
    env = os.environ.get("TRIALPACS_NEW_PASSWORD")
    if env:
        return env
    if not prompt:
        return None
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        console.print("[red]error:[/red] the passwords differ")
        raise typer.Exit(2)
    return first


Username = Annotated[str, typer.Argument(help="The account name.")]


def user_add(
    username: Username,
    role: Annotated[
        list[str] | None, typer.Option("--role", help="role@TRIAL/SITE grant (repeatable).")
    ] = None,
    no_password: Annotated[
        bool, typer.Option("--no-password", help="No local password (sign-in via LDAP/SSO).")
    ] = False,
    display_name: Annotated[str, typer.Option("--display-name")] = "",
    email: Annotated[str, typer.Option("--email")] = "",
    data_dir: DataDir = None,
    config: ConfigFile = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Add a local account. The password comes from a prompt or TRIALPACS_NEW_PASSWORD."""
    from trialpacs.access import users

    password = None if no_password else _password(prompt=True)

    def run(archive: Archive) -> None:
        users.add_user(
            archive.db,
            username,
            password=password,
            display_name=display_name,
            email=email,
            min_length=archive.settings.password_min_length,
        )
        for g in role or []:
            users.grant(archive.db, username, g)

    _run(config, data_dir, database_url, run)
    console.print(f"user {username} added")


def user_disable(
    username: Username,
    data_dir: DataDir = None,
    config: ConfigFile = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Disable an account; its sessions and keys are revoked at once."""
    from trialpacs.access.users import set_disabled

    _run(config, data_dir, database_url, lambda a: set_disabled(a.db, username, True))
    console.print(f"user {username} disabled")


def user_enable(
    username: Username,
    data_dir: DataDir = None,
    config: ConfigFile = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Enable a disabled account again."""
    from trialpacs.access.users import set_disabled

    _run(config, data_dir, database_url, lambda a: set_disabled(a.db, username, False))
    console.print(f"user {username} enabled")


def user_reset_mfa(
    username: Username,
    data_dir: DataDir = None,
    config: ConfigFile = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Remove the second factor (lost phone); the user enrols again at next sign-in."""
    from trialpacs.access.users import reset_mfa

    _run(config, data_dir, database_url, lambda a: reset_mfa(a.db, username))
    console.print(f"second factor of {username} reset")


def user_password(
    username: Username,
    data_dir: DataDir = None,
    config: ConfigFile = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Set a new password (prompt or TRIALPACS_NEW_PASSWORD); also unlocks the account."""
    from trialpacs.access.users import set_password

    password = _password(prompt=True)
    assert password is not None

    def run(archive: Archive) -> None:
        set_password(
            archive.db, username, password, min_length=archive.settings.password_min_length
        )

    _run(config, data_dir, database_url, run)
    console.print(f"password of {username} set")


def user_list(
    data_dir: DataDir = None,
    config: ConfigFile = None,
    database_url: DatabaseUrl = None,
) -> None:
    """List accounts with their kind, source, state and grants."""
    from trialpacs.access.users import list_users

    rows = _run(config, data_dir, database_url, lambda a: list_users(a.db))
    table = Table(title="users")
    for col in ("username", "kind", "source", "state", "roles"):
        table.add_column(col)
    for name, kind, source, disabled, grants in rows:
        table.add_row(name, kind, source, "disabled" if disabled else "active", ", ".join(grants))
    Console().print(table)


Grant = Annotated[str, typer.Argument(help="role, role@TRIAL or role@TRIAL/SITE.")]


def role_grant(
    username: Username,
    grant: Grant,
    data_dir: DataDir = None,
    config: ConfigFile = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Grant a role in a trial (and site) to an account."""
    from trialpacs.access import users

    g = _run(config, data_dir, database_url, lambda a: users.grant(a.db, username, grant))
    console.print(f"granted {g} to {username}")


def role_revoke(
    username: Username,
    grant: Grant,
    data_dir: DataDir = None,
    config: ConfigFile = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Revoke a role; the account's sessions end so the change applies at once."""
    from trialpacs.access import users

    count = _run(config, data_dir, database_url, lambda a: users.revoke(a.db, username, grant))
    if not count:
        console.print(f"[yellow]{username} had no grant {grant}[/yellow]")
        raise typer.Exit(1)
    console.print(f"revoked {grant} from {username}")
