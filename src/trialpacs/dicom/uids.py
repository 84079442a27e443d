"""UID syntax rules (PS3.5 9.1), enforced on every UID that reaches a key or a URL."""

from __future__ import annotations

import re

from trialpacs.errors import InvalidInput

_UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
_LENIENT_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")
MAX_UID_LENGTH = 64


def is_valid_uid(value: object) -> bool:
    """True for a UID we accept as an identifier.

    Real archives hold UIDs with leading zeros in a component (``0.0.0.0.1.08``)
    which PS3.5 forbids; refusing them would lose real data, so only the
    character set, the dot structure and the length are enforced. Those are
    what make a UID safe to use as a storage key and in a URL.
    """
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_UID_LENGTH
        and _LENIENT_RE.match(value) is not None
    )


def is_strict_uid(value: str) -> bool:
    """True only for UIDs that follow PS3.5 exactly (no leading zeros)."""
    return len(value) <= MAX_UID_LENGTH and _UID_RE.match(value) is not None


def require_uid(value: object, what: str) -> str:
    """Return the UID or raise InvalidInput naming the attribute and the problem."""
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{what} is missing")
    if len(value) > MAX_UID_LENGTH:
        raise InvalidInput(f"{what} is {len(value)} characters long; UIDs have at most 64")
    if _LENIENT_RE.match(value) is None:
        raise InvalidInput(f"{what} {value!r} is not a valid UID (digits separated by dots)")
    return value
