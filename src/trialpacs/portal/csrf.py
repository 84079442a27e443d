"""CSRF tokens for portal forms: a double-submit cookie compared in constant time.

The browser keeps a random value in an HttpOnly, SameSite=Strict cookie and
every form (and htmx request) carries the same value; a cross-site page can
make the browser send the cookie but can neither read it nor guess the field.
"""

from __future__ import annotations

import hmac
import secrets

COOKIE = "tp_csrf"
FIELD = "csrf_token"
HEADER = "x-csrf-token"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def valid(cookie: str | None, submitted: str | None) -> bool:
    if not cookie or not submitted or len(cookie) < 32:
        return False
    return hmac.compare_digest(cookie.encode(), submitted.encode())
