"""Password hashing (argon2id) and the password policy.

The policy follows NIST SP 800-63B: length over composition rules, a block
list of common passwords, and no password that contains the username.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# RFC 9106 "second recommended option" (64 MiB, t=3, p=4) with argon2id.
_HASHER = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=4)
MAX_LENGTH = 256
_COMMON = frozenset(
    {
        "password", "password1", "password123", "123456789012", "qwertyuiopas",
        "letmein12345", "welcome12345", "administrator", "changeme1234",
        "iloveyou1234", "trustno1trustno1", "passw0rdpassw0rd", "000000000000",
        "111111111111", "123123123123", "abc123abc123", "qwerty123456",
        "correcthorsebatterystaple", "trialpacs1234",
    }
)  # fmt: skip
# Verified against when the account does not exist, so timing does not tell.
_DUMMY_HASH = _HASHER.hash("not a real password, only for timing")


class PasswordRejected(ValueError):
    """The password breaks the policy; the message says which rule."""


def check_policy(password: str, username: str, min_length: int = 12) -> None:
    if len(password) < min_length:
        raise PasswordRejected(f"the password must be at least {min_length} characters long")
    if len(password) > MAX_LENGTH:
        raise PasswordRejected(f"the password must be at most {MAX_LENGTH} characters long")
    lowered = password.lower()
    if lowered in _COMMON or len(set(password)) < 4:
        raise PasswordRejected("the password is too common or too repetitive")
    if username and username.lower() in lowered:
        raise PasswordRejected("the password must not contain the username")


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    try:
        return _HASHER.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _HASHER.check_needs_rehash(stored)
