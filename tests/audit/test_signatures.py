"""E-signatures: re-authentication, meaning, manifestation, binding to the signed record."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from trialpacs.access import users
from trialpacs.access.local import authenticate
from trialpacs.archive import Archive
from trialpacs.audit import verify
from trialpacs.audit.chain import Filter, query
from trialpacs.audit.exports import to_csv
from trialpacs.audit.signatures import SignatureRefused, sign, verify_signature
from trialpacs.settings import load_settings

PASSWORD = "correct-horse-battery-7"


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    arch = Archive.open(load_settings(None, data_dir=tmp_path))
    users.add_user(arch.db, "dr.who", password=PASSWORD, display_name="Dr. Jane Who")
    yield arch
    arch.close()


def _reauth(archive: Archive):  # type: ignore[no-untyped-def]
    def check(username: str, password: str) -> str:
        authenticate(archive.db, username, password)
        return "Dr. Jane Who"

    return check


READ = {"study": "1.2.3", "finding": "no progression", "reader": "dr.who"}


def test_wrong_password_is_refused_and_audited(archive: Archive) -> None:
    with pytest.raises(SignatureRefused):
        sign(archive.db, archive.settings.data_dir, username="dr.who", password="wrong-one-1234",
             meaning="Approved", record_kind="read", record_id="r1", record=READ,
             reauthenticate=_reauth(archive))  # fmt: skip
    e = query(archive.db, Filter(action="signature.sign"))[-1]
    assert e["outcome"] == "failure"


def test_unknown_meaning_is_refused(archive: Archive) -> None:
    with pytest.raises(SignatureRefused):
        sign(archive.db, archive.settings.data_dir, username="dr.who", password=PASSWORD,
             meaning="Liked", record_kind="read", record_id="r1", record=READ,
             reauthenticate=_reauth(archive))  # fmt: skip


def test_signature_manifestation_and_binding(archive: Archive) -> None:
    sig = sign(archive.db, archive.settings.data_dir, username="dr.who", password=PASSWORD,
               meaning="Reviewed", record_kind="read", record_id="r1", record=READ,
               reauthenticate=_reauth(archive))  # fmt: skip
    shown = sig.manifestation()
    assert "Dr. Jane Who" in shown and "Reviewed" in shown and shown.endswith("Z (UTC)")
    assert verify_signature(sig, record_kind="read", record_id="r1", record=READ)
    # The manifestation is in the trail and in its exports.
    assert "Dr. Jane Who — Reviewed — " in to_csv(query(archive.db, Filter(action="signature.*")))
    # Copied onto another record, or left on a changed one: fails.
    other = {**READ, "study": "9.9.9"}
    assert not verify_signature(sig, record_kind="read", record_id="r2", record=other)
    assert not verify_signature(sig, record_kind="read", record_id="r1", record=other)
    # A forged manifest (another meaning) fails the server's signature.
    forged = dataclasses.replace(sig, manifest={**sig.manifest, "meaning": "Approved"})
    assert not verify_signature(forged, record_kind="read", record_id="r1", record=READ)
    assert verify(archive.db).ok
