"""TOTP secrets are encrypted at rest, under a key in the data directory, bound to the account."""

from __future__ import annotations

import base64
import stat
import time

import pyotp
import pytest
from sqlalchemy import select, text

from access._helpers import PASSWORD
from trialpacs.access import mfa, users
from trialpacs.access.local import MfaRequired, authenticate
from trialpacs.access.models import User
from trialpacs.archive import Archive
from trialpacs.web.app import create_app


def _stored(archive: Archive, username: str) -> str:
    with archive.db.read() as session:
        value = session.scalar(select(User.totp_secret).where(User.username == username))
    assert value is not None
    return value


def test_enrolled_secret_is_not_in_the_database(archive: Archive, alice: str) -> None:
    enrolment = mfa.begin(archive.db, alice)
    stored = _stored(archive, alice)
    assert enrolment.secret not in stored and len(stored) == mfa.SEALED_LENGTH
    raw = base64.b32decode(enrolment.secret)
    assert raw not in base64.urlsafe_b64decode(stored)
    key_file = archive.settings.data_dir / mfa.KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    totp = pyotp.TOTP(enrolment.secret)
    assert mfa.confirm(archive.db, alice, totp.now())
    with pytest.raises(MfaRequired):
        authenticate(archive.db, alice, PASSWORD)
    assert authenticate(archive.db, alice, PASSWORD, otp=totp.at(time.time() + 30))


def test_a_sealed_secret_copied_to_another_account_does_not_open(
    archive: Archive, alice: str
) -> None:
    users.add_user(archive.db, "mallory", password=PASSWORD)
    enrolment = mfa.begin(archive.db, alice)
    assert mfa.confirm(archive.db, alice, pyotp.TOTP(enrolment.secret).now())
    with archive.db.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE users SET totp_enabled=1, totp_secret=(SELECT totp_secret FROM users "
                "WHERE username='alice') WHERE username='mallory'"
            )
        )
    with archive.db.write() as session:
        mallory = users.get_user(session, "mallory")
        assert mallory is not None
        assert not mfa.check(mallory, pyotp.TOTP(enrolment.secret).now(), db=archive.db)


def test_plaintext_rows_are_sealed_at_start_up(archive: Archive, alice: str) -> None:
    legacy = pyotp.random_base32()
    with archive.db.engine.begin() as conn:
        conn.execute(
            text("UPDATE users SET totp_secret=:s, totp_enabled=1 WHERE username='alice'"),
            {"s": legacy},
        )
    create_app(archive)  # the Authenticator seals what it finds
    stored = _stored(archive, alice)
    assert stored != legacy and mfa.is_sealed(stored)
    assert authenticate(archive.db, alice, PASSWORD, otp=pyotp.TOTP(legacy).now())
    assert mfa.seal_existing(archive.db) == 0
