"""Re-authentication for electronic signatures (21 CFR 11.200): prove it is you, now.

A signature needs the signer's credential again, not the session that is
already open. Local accounts give their password (and TOTP code, when
enrolled; failures count towards lockout like a sign-in); LDAP/AD accounts
bind to the directory again. Accounts from OIDC or SAML have no password
here: they come back from a fresh sign-in with forced authentication
(``prompt=login`` / ``ForceAuthn``, ``access.signing_grants``) and present
the one-time signing grant it produced in place of the password; without
one they are refused with a reason that says so.
"""

from __future__ import annotations

from collections.abc import Callable

from trialpacs.access.ldap import LdapDirectory
from trialpacs.access.local import LockoutPolicy, authenticate
from trialpacs.access.signing_grants import consume
from trialpacs.access.users import get_user
from trialpacs.index.db import Database
from trialpacs.settings import Settings


class SsoReauthenticationRequired(Exception):
    """The account signs in through OIDC/SAML: a password cannot re-authenticate it."""


def source_of(db: Database, username: str) -> str:
    with db.read() as session:
        user = get_user(session, username)
    return user.source if user is not None else ""


GRANT_PREFIX = "tpg_"


def reauthenticator(
    db: Database, settings: Settings, otp: str | None = None, purpose: str = ""
) -> Callable[[str, str], str]:
    """``check(username, credential) -> printed name`` for ``audit.signatures.sign``; raises when
    the credential is wrong (the signature module audits the refusal).

    For SSO accounts the credential is a signing grant for ``purpose`` (the
    record being signed, ``read:7`` / ``qc_decision:SERIES``), used once.
    """

    def check(username: str, password: str) -> str:
        source = source_of(db, username)
        if source in ("oidc", "saml"):
            if not (purpose and password.startswith(GRANT_PREFIX)):
                raise SsoReauthenticationRequired(
                    f"{username} signs in through {source.upper()}: signing needs a fresh "
                    "forced-authentication sign-in (POST /auth/reauth)"
                )
            consume(db, password, username=username, purpose=purpose)
        elif source == "ldap":
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
