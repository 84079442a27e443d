"""Accounts vouched for by an identity provider (LDAP, OIDC, SAML).

The provider's groups/claims/attributes are mapped to grants by
configuration, and the mapped grants replace the previous ones at every
sign-in, so removing someone from a group removes the role. A name already
used by an account of another source is refused rather than merged: an IdP
must not be able to take over a local administrator by naming it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from trialpacs.access import events
from trialpacs.access.clock import now
from trialpacs.access.local import AuthFailed
from trialpacs.access.models import User
from trialpacs.access.policy import Grant, parse_grant
from trialpacs.access.users import check_username, get_user, replace_external_grants
from trialpacs.index.db import Database

log = logging.getLogger(__name__)


def map_grants(values: Iterable[str], mapping: Mapping[str, list[str]]) -> list[Grant]:
    """Grants for the given group names/DNs/claim values; unknown values grant nothing.

    DNs are compared case-insensitively (LDAP and AD treat them so).
    """
    lowered = {k.lower(): v for k, v in mapping.items()}
    out: list[Grant] = []
    for value in values:
        for text in lowered.get(str(value).lower(), []):
            try:
                out.append(parse_grant(text))
            except ValueError as exc:
                log.error("bad grant %r in the role mapping of %r: %s", text, value, exc)
    return out


def sign_in_external(
    db: Database,
    source: str,
    *,
    username: str,
    external_id: str,
    grants: Iterable[Grant],
    display_name: str = "",
    email: str = "",
) -> int:
    """Create or update the account and its provider grants; returns its pk."""
    try:
        username = check_username(username)
    except ValueError:
        raise AuthFailed() from None
    with db.write() as session:
        user = get_user(session, username)
        if user is None:
            user = User(username=username, kind="user", source=source, external_id=external_id)
            session.add(user)
            session.flush()
            events.record(session, "user.add", username, actor=source, detail=f"user/{source}")
        foreign = user.source != source or bool(
            user.external_id and user.external_id != external_id
        )
        if foreign:
            events.record(
                session,
                "login.fail",
                username,
                actor=source,
                detail=f"name belongs to a {user.source} account",
                severity="alert",
            )
        elif user.disabled_at is not None:
            events.record(session, "login.fail", username, actor=source, detail="disabled")
        else:
            user.external_id = external_id
            user.display_name = display_name or user.display_name
            user.email = email or user.email
            user.last_login_at = now()
            replace_external_grants(session, user, source, grants)
            events.record(session, "login.ok", username, detail=source)
        failed = foreign or user.disabled_at is not None
        pk = user.pk
    if failed:
        raise AuthFailed()
    return pk
