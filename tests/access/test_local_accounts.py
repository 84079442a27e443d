"""Local accounts: argon2id, password policy, TOTP with a QR code, lockout with an alert."""

from __future__ import annotations

import time

import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from access._helpers import PASSWORD, bearer, login
from trialpacs.access import mfa, users
from trialpacs.access.events import recent
from trialpacs.access.local import AuthFailed, MfaRequired, authenticate
from trialpacs.access.models import User
from trialpacs.access.passwords import PasswordRejected, check_policy
from trialpacs.archive import Archive


def test_password_is_stored_as_argon2id(archive: Archive, alice: str) -> None:
    with archive.db.read() as session:
        user = session.scalars(select(User).where(User.username == alice)).one()
    assert user.password_hash is not None and user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("short1!", "at least 12"),
        ("password123", "at least 12"),
        ("correcthorsebatterystaple", "too common"),
        ("aaaaaaaaaaaaaaaa", "repetitive"),
        ("my-alice-password-1", "username"),
        ("x" * 300, "at most"),
    ],
)
def test_password_policy_names_the_rule(password: str, rule: str) -> None:
    with pytest.raises(PasswordRejected, match=rule):
        check_policy(password, "alice")


def test_login_gives_tokens_and_wrong_password_does_not(client: TestClient, alice: str) -> None:
    r = login(client, alice)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 15 * 60
    assert body["refresh_token"].startswith("tpr_")
    me = client.get("/auth/me", headers=bearer(body["access_token"])).json()
    assert me["subject"] == "alice" and me["roles"] == ["reader@T1"]
    bad = login(client, alice, "wrong-password-123")
    unknown = login(client, "nobody", "wrong-password-123")
    assert bad.status_code == unknown.status_code == 401
    assert bad.json() == unknown.json()  # no hint whether the account exists


def test_lockout_after_repeated_failures_with_alert(
    client: TestClient, archive: Archive, alice: str
) -> None:
    for _ in range(3):  # threshold 3 in the fixture
        assert login(client, alice, "wrong-password-123").status_code == 401
    locked = login(client, alice)  # right password, but locked
    assert locked.status_code == 401
    assert locked.json() == login(client, alice, "wrong-password-123").json()
    alerts = [e for e in recent(archive.db) if e.kind == "account.locked"]
    assert alerts and alerts[0].severity == "alert" and alerts[0].subject == "alice"
    users.set_password(archive.db, alice, "another-good-passphrase-9")  # an admin reset unlocks
    assert login(client, alice, "another-good-passphrase-9").status_code == 200


def test_totp_enrolment_with_qr_and_sign_in(
    client: TestClient, archive: Archive, alice: str
) -> None:
    token = login(client, alice).json()["access_token"]
    enrol = client.post("/auth/mfa/enrol", headers=bearer(token))
    assert enrol.status_code == 200
    data = enrol.json()
    assert data["otpauth_uri"].startswith("otpauth://totp/trialpacs:alice")
    assert data["qr_png"].startswith("data:image/png;base64,")
    assert "<svg" in data["qr_svg"]
    totp = pyotp.TOTP(data["secret"])
    guess = client.post("/auth/mfa/confirm", json={"code": "000000"}, headers=bearer(token))
    assert guess.status_code in (200, 400)
    # fresh code (the wrong guess above may by chance have been right; then we are enrolled)
    with archive.db.read() as session:
        enrolled = session.scalars(select(User.totp_enabled).where(User.username == alice)).one()
    if not enrolled:
        ok = client.post("/auth/mfa/confirm", json={"code": totp.now()}, headers=bearer(token))
        assert ok.status_code == 200
    need = login(client, alice)
    assert need.status_code == 401 and need.json()["mfa_required"] is True
    # The code just used for confirmation cannot be replayed; the next step's code works.
    next_code = totp.at(time.time() + 30)
    assert login(client, alice, otp=next_code).status_code == 200
    assert login(client, alice, otp=next_code).status_code == 401  # replay refused
    users.reset_mfa(archive.db, alice)
    assert login(client, alice).status_code == 200


def test_domain_authenticate_raises(archive: Archive, alice: str) -> None:
    assert authenticate(archive.db, alice, PASSWORD) > 0
    with pytest.raises(AuthFailed):
        authenticate(archive.db, alice, "nope-nope-nope-1")
    enrolment = mfa.begin(archive.db, alice)
    assert mfa.confirm(archive.db, alice, pyotp.TOTP(enrolment.secret).now())
    with pytest.raises(MfaRequired):
        authenticate(archive.db, alice, PASSWORD)


def test_disabled_account_cannot_sign_in(client: TestClient, archive: Archive, alice: str) -> None:
    token = login(client, alice).json()["access_token"]
    users.set_disabled(archive.db, alice)
    client.app.state.auth.invalidate()  # type: ignore[attr-defined]
    assert client.get("/auth/me", headers=bearer(token)).status_code == 401
    assert login(client, alice).status_code == 401
