"""Which principal a calling AE is, for object-level checks on C-FIND/C-MOVE/C-GET.

An AE's grants live in the access module's grants table, on an account of
kind ``ae`` named ``ae.TITLE`` that has no password and no key, so it can
never sign in; the same grants can then be listed, granted and revoked with
``trialpacs role``. The policy (:func:`trialpacs.access.policy.peer_principal`)
turns the known-AE row and those grants into a principal; nothing here
interprets roles.
"""

from __future__ import annotations

from sqlalchemy import delete, select

from trialpacs.access import users
from trialpacs.access.models import RoleGrant, User
from trialpacs.access.policy import Grant, Principal, parse_grant, peer_principal
from trialpacs.dimse import remote_aes
from trialpacs.errors import InvalidInput, NotFound
from trialpacs.index.db import Database
from trialpacs.settings import Settings

ACCOUNT_KIND = "ae"


def account_name(title: str) -> str:
    """The grants account of an AE; titles outside the username characters get no grants."""
    name = f"ae.{remote_aes.normalize_title(title)}"
    try:
        return users.check_username(name)
    except ValueError:
        raise InvalidInput(
            f"AE title {title!r} cannot hold grants: use letters, digits, '.', '_' or '-'"
        ) from None


def check_grant(title: str, grant_text: str) -> Grant:
    """Refuse a bad grant before anything is written."""
    account_name(title)
    try:
        return parse_grant(grant_text)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


def grant(db: Database, title: str, grant_text: str, actor: str = "cli") -> Grant:
    """Give a known AE a grant (e.g. ``reader@T1`` for a reviewer's workstation)."""
    if remote_aes.find(db, title.strip()) is None:
        raise NotFound(f"no known AE titled {title.strip()}")
    parsed = check_grant(title, grant_text)
    name = account_name(title)
    with db.read() as session:
        exists = users.get_user(session, name) is not None
    if not exists:
        users.add_user(db, name, kind=ACCOUNT_KIND, actor=actor)
    users.grant(db, name, str(parsed), actor=actor)
    return parsed


def forget(db: Database, title: str) -> None:
    """Drop an AE's grants with the AE: a re-added title starts with none."""
    try:
        name = account_name(title)
    except InvalidInput:
        return
    with db.write() as session:
        pk = session.scalar(select(User.pk).where(User.username == name, User.kind == ACCOUNT_KIND))
        if pk is not None:  # grants first: SQLite may not enforce ON DELETE CASCADE
            session.execute(delete(RoleGrant).where(RoleGrant.user_pk == pk))
            session.execute(delete(User).where(User.pk == pk))


def grants_of(db: Database, title: str) -> tuple[Grant, ...]:
    try:
        name = account_name(title)
    except InvalidInput:
        return ()
    with db.read() as session:
        user = session.scalars(
            select(User).where(User.username == name, User.kind == ACCOUNT_KIND)
        ).first()
        return () if user is None else users.grants_of(session, user.pk)


def principal_for(db: Database, settings: Settings, calling_ae: str) -> Principal:
    """The caller behind ``calling_ae``; an unknown AE (demo mode only) reads what
    ``dicom_unknown_ae_read`` allows, which by default is nothing."""
    title = calling_ae.strip()
    known = remote_aes.find(db, title) if title else None
    if known is None:
        demo = settings.dicom_accept_unknown and settings.dicom_unknown_ae_read
        return peer_principal(title, None, open_read=demo)
    return peer_principal(known.ae_title, known.site, grants_of(db, known.ae_title))
