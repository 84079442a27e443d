"""TOTP second factor (RFC 6238): enrolment with a QR code, verification without replay."""

from __future__ import annotations

import io
import time

import pyotp
import qrcode
import qrcode.image.svg

from trialpacs.access import events
from trialpacs.access.models import User
from trialpacs.access.users import UnknownUser, get_user
from trialpacs.index.db import Database

ISSUER = "trialpacs"
STEP = 30


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
        user.totp_secret = pyotp.random_base32()
        secret = user.totp_secret
    uri = pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)
    return Enrolment(secret, uri)


def confirm(db: Database, username: str, code: str) -> bool:
    """Enable the factor once the user proves the app shows the right codes."""
    with db.write() as session:
        user = get_user(session, username)
        if user is None or not user.totp_secret or user.totp_enabled:
            return False
        if not check(user, code):
            return False
        user.totp_enabled = True
        events.record(session, "mfa.enrol", username, actor=username)
        return True


def check(user: User, code: str, at: float | None = None) -> bool:
    """True for a current code not used before; updates the last used step."""
    if not user.totp_secret or not code or not code.strip().isdigit():
        return False
    totp = pyotp.TOTP(user.totp_secret)
    moment = time.time() if at is None else at
    for drift in (0, -1, 1):
        step = int(moment // STEP) + drift
        if step <= (user.totp_last_step or 0):
            continue
        if pyotp.utils.strings_equal(totp.at(step * STEP), code.strip()):
            user.totp_last_step = step
            return True
    return False
