"""TOTP second factor (RFC 6238): enrolment with a QR code, verification without replay.

The shared secret is kept encrypted in the index (AES-256-GCM, the username
as associated data, so a sealed secret copied onto another account does not
open) under a key in the data directory (``mfa-secret.key``, created 0600 on
first use), never next to the ciphertext: a copy of the database alone does
not give anyone's second factor. Secrets stored in plaintext before this
(32 base32 characters) still work and are sealed at the next successful use
or by :func:`seal_existing`, which ``Authenticator`` runs at start-up.
"""

from __future__ import annotations

import base64
import io
import os
import threading
import time
from pathlib import Path

import pyotp
import qrcode
import qrcode.image.svg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import func, select

from trialpacs.access import events
from trialpacs.access.models import User
from trialpacs.access.users import UnknownUser, get_user
from trialpacs.index.db import Database

ISSUER = "trialpacs"
STEP = 30
KEY_FILE = "mfa-secret.key"
SEALED_LENGTH = 64  # urlsafe base64 of nonce (12) + 20-byte secret + tag (16)
_KEYS: dict[Path, bytes] = {}
_KEYS_LOCK = threading.Lock()


class MfaKeyMissing(RuntimeError):
    """The index is not opened through an Archive, so there is no key directory."""


def _key(db: Database) -> bytes:
    if db.key_dir is None:
        raise MfaKeyMissing("TOTP secrets need the data directory's key: open the Archive")
    path = Path(db.key_dir) / KEY_FILE
    with _KEYS_LOCK:
        if path in _KEYS:
            return _KEYS[path]
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            key = path.read_bytes()
        else:
            key = AESGCM.generate_key(bit_length=256)
            with os.fdopen(fd, "wb") as fh:
                fh.write(key)
                fh.flush()
                os.fsync(fh.fileno())
        if len(key) != 32:
            raise ValueError(f"{path} must hold a 32-byte key")
        _KEYS[path] = key
        return key


def seal(db: Database, username: str, secret: str) -> str:
    raw = base64.b32decode(secret)
    if len(raw) != 20:
        raise ValueError("TOTP secrets are 160 bits")
    nonce = os.urandom(12)
    sealed = nonce + AESGCM(_key(db)).encrypt(nonce, raw, username.encode())
    return base64.urlsafe_b64encode(sealed).decode()


def is_sealed(stored: str) -> bool:
    return len(stored) == SEALED_LENGTH


def unseal(db: Database, username: str, stored: str) -> str:
    """The base32 secret; a legacy plaintext secret is returned as it is."""
    if not is_sealed(stored):
        return stored
    blob = base64.urlsafe_b64decode(stored.encode())
    raw = AESGCM(_key(db)).decrypt(blob[:12], blob[12:], username.encode())
    return base64.b32encode(raw).decode()


def seal_existing(db: Database) -> int:
    """Encrypt secrets still stored in plaintext; returns how many were sealed."""
    with db.write() as session:
        rows = session.scalars(
            select(User).where(
                User.totp_secret.is_not(None), func.length(User.totp_secret) != SEALED_LENGTH
            )
        ).all()
        for user in rows:
            assert user.totp_secret is not None
            user.totp_secret = seal(db, user.username, user.totp_secret)
        return len(rows)


class Enrolment:
    """What the user needs to add the account to an authenticator app."""

    def __init__(self, secret: str, uri: str) -> None:
        self.secret = secret
        self.uri = uri

    def qr_svg(self) -> bytes:
        image = qrcode.make(self.uri, image_factory=qrcode.image.svg.SvgPathImage)
        buf = io.BytesIO()
        image.save(buf)
        return buf.getvalue()

    def qr_png(self) -> bytes:
        buf = io.BytesIO()
        qrcode.make(self.uri).save(buf)
        return buf.getvalue()


def begin(db: Database, username: str) -> Enrolment:
    """A fresh secret, pending until :func:`confirm`; an enabled factor is left alone."""
    with db.write() as session:
        user = get_user(session, username)
        if user is None:
            raise UnknownUser(username)
        if user.totp_enabled:
            raise ValueError("a second factor is enrolled already; an administrator can reset it")
        secret = pyotp.random_base32()
        user.totp_secret = seal(db, username, secret)
    uri = pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)
    return Enrolment(secret, uri)


def confirm(db: Database, username: str, code: str) -> bool:
    """Enable the factor once the user proves the app shows the right codes."""
    with db.write() as session:
        user = get_user(session, username)
        if user is None or not user.totp_secret or user.totp_enabled:
            return False
        if not check(user, code, db=db):
            return False
        user.totp_enabled = True
        events.record(session, "mfa.enrol", username, actor=username)
        return True


def check(user: User, code: str, at: float | None = None, *, db: Database | None = None) -> bool:
    """True for a current code not used before; updates the last used step.

    ``db`` gives the key of a sealed secret; without it only a legacy
    plaintext secret can be checked.
    """
    if not user.totp_secret or not code or not code.strip().isdigit():
        return False
    if is_sealed(user.totp_secret) and db is None:
        return False
    try:
        secret = user.totp_secret if db is None else unseal(db, user.username, user.totp_secret)
    except InvalidTag:  # sealed for another account (copied) or under another key
        return False
    if db is not None and not is_sealed(user.totp_secret):
        user.totp_secret = seal(db, user.username, secret)  # migrate on use
    totp = pyotp.TOTP(secret)
    moment = time.time() if at is None else at
    for drift in (0, -1, 1):
        step = int(moment // STEP) + drift
        if step <= (user.totp_last_step or 0):
            continue
        if pyotp.utils.strings_equal(totp.at(step * STEP), code.strip()):
            user.totp_last_step = step
            return True
    return False
