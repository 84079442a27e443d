"""Re-authentication for electronic signatures (21 CFR 11.200): prove it is you, now.

A signature needs the signer's credential again, not the session that is
already open. Local accounts give their password (and TOTP code, when
enrolled; failures count towards lockout like a sign-in); LDAP/AD accounts
bind to the directory again. Accounts from OIDC or SAML have no password
here: they must come back from a fresh sign-in with forced authentication
(``prompt=login`` / ``ForceAuthn``), which this module does not do, so it
refuses them with a reason that says so.
"""

from __future__ import annotations

from collections.abc import Callable

from trialpacs.access.ldap import LdapDirectory
from trialpacs.access.local import LockoutPolicy, authenticate
from trialpacs.access.users import get_user
from trialpacs.index.db import Database
from trialpacs.settings import Settings


class SsoReauthenticationRequired(Exception):
    """The account signs in through OIDC/SAML: a password cannot re-authenticate it."""


def source_of(db: Database, username: str) -> str:
    with db.read() as session:
        user = get_user(session, username)
    return user.source if user is not None else ""


def reauthenticator(
    db: Database, settings: Settings, otp: str | None = None
) -> Callable[[str, str], str]:
    """``check(username, password) -> printed name`` for ``audit.signatures.sign``; raises when
    the credential is wrong (the signature module audits the refusal)."""

    def check(username: str, password: str) -> str:
        source = source_of(db, username)
        if source in ("oidc", "saml"):
            raise SsoReauthenticationRequired(
                f"{username} signs in through {source.upper()}: signing needs a fresh "
                "forced-authentication sign-in, which is not available yet"
            )
        if source == "ldap":
            if not settings.ldap_url:
                raise PermissionError("LDAP is not configured")
            LdapDirectory.from_settings(settings).authenticate(username, password)
        else:
            policy = LockoutPolicy(settings.lockout_threshold, settings.lockout_minutes)
            authenticate(db, username, password, otp, policy)
        with db.read() as session:
            user = get_user(session, username)
            return (user.display_name if user is not None else "") or username

    return check
