"""ATNA export validated against the DICOM audit message schema (PS3.15 A.5.1).

The standard publishes the schema in RELAX NG Compact syntax;
``dicom-audit-message.rng`` is the same grammar written in RELAX NG XML
syntax (which lxml loads), from the definitions of A.5.1.1. Entries come
from a real trail: HTTP requests, a store, a configuration change with
old/new values, a refused and a successful signature, a lockout.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from lxml import etree

from dicomfactory import make_bytes
from trialpacs.access import users
from trialpacs.access.local import AuthFailed, LockoutPolicy, authenticate
from trialpacs.archive import Archive
from trialpacs.audit.chain import AuditEvent, query, record
from trialpacs.audit.exports import stream, to_atna_xml
from trialpacs.audit.signatures import SignatureRefused, sign
from trialpacs.ingest.store import Placement, store_many
from trialpacs.settings import load_settings

SCHEMA = etree.RelaxNG(etree.parse(str(Path(__file__).with_name("dicom-audit-message.rng"))))
PASSWORD = "correct-horse-battery-7"


@pytest.fixture
def trail(tmp_path: Path) -> list[dict[str, str]]:
    arch = Archive.open(load_settings(None, data_dir=tmp_path))
    try:
        users.add_user(arch.db, "dr.who", password=PASSWORD, display_name="Dr. Who")
        users.grant(arch.db, "dr.who", "reader@T1")
        store_many(
            arch,
            [make_bytes(), make_bytes()],
            placement=Placement(collection="published", trial_id="T1", site_id="S1"),
            audit=AuditEvent(action="store.stow-rs", actor="dr.who", address="10.0.0.7"),
        )
        failed_find = AuditEvent(
            action="dimse.C-FIND",
            actor="ae:PACS",
            address="::1",
            agent="AE PACS -> TRIALPACS",
            outcome="failure",
            reason="QueryRetrieveLevel (0008,0052) must be ...",
        )
        record(arch.db, failed_find)
        change = AuditEvent(
            action="config.update",
            actor="os:root",
            trial="T1",
            object="trial:T1",
            old_value='{"name": "A & <B>"}',
            new_value='{"name": "C"}',
            reason="applied from t.yaml",
        )
        record(arch.db, change)

        def reauth(u: str, p: str) -> str:
            authenticate(arch.db, u, p)
            return "Dr. Who"

        for password in ("wrong-password-123", PASSWORD):
            with contextlib.suppress(SignatureRefused):
                sign(arch.db, tmp_path, username="dr.who", password=password, meaning="Approved",
                     record_kind="read", record_id="1", record={"a": 1}, reauthenticate=reauth,
                     trial="T1", study="1.2.3")  # fmt: skip
        for _ in range(3):
            with contextlib.suppress(AuthFailed):
                authenticate(arch.db, "dr.who", "wrong-password-123", policy=LockoutPolicy(2, 1))
        return query(arch.db)
    finally:
        arch.close()


def _messages(xml: str) -> list[etree._Element]:
    root = etree.fromstring(xml.encode())
    assert root.tag == "AuditMessages"
    return list(root)


def test_every_exported_message_is_schema_valid(trail: list[dict[str, str]]) -> None:
    actions = {e["action"] for e in trail}
    assert {"store.stow-rs", "signature.sign", "auth.account.locked", "config.update"} <= actions
    messages = _messages(to_atna_xml(trail))
    assert len(messages) == len(trail)
    for entry, msg in zip(trail, messages, strict=True):
        assert SCHEMA.validate(msg), (entry["action"], str(SCHEMA.error_log))


def test_streamed_export_is_the_same_document(trail: list[dict[str, str]]) -> None:
    streamed = "".join(stream("atna", [trail[:3], trail[3:]]))
    for msg in _messages(streamed):
        assert SCHEMA.validate(msg), str(SCHEMA.error_log)


def test_manifestation_and_changes_travel_as_value_pairs(trail: list[dict[str, str]]) -> None:
    import base64

    signed = next(e for e in trail if e["action"] == "signature.sign" and e["outcome"] == "success")
    msg = _messages(to_atna_xml([signed]))[0]
    values = {
        d.get("type"): base64.b64decode(d.get("value")).decode()
        for d in msg.iter("ParticipantObjectDetail")
    }
    assert values["new_value"].startswith("Dr. Who — Approved — ")


def test_the_schema_rejects_what_the_standard_forbids(trail: list[dict[str, str]]) -> None:
    msg = _messages(to_atna_xml(trail[:1]))[0]
    obj = msg.find("ParticipantObjectIdentification")
    assert obj is not None
    obj.remove(obj.find("ParticipantObjectName"))  # name or query is mandatory
    assert not SCHEMA.validate(msg)
    msg = _messages(to_atna_xml(trail[:1]))[0]
    msg.find("EventIdentification").set("EventOutcomeIndicator", "3")  # not in 0/4/8/12
    assert not SCHEMA.validate(msg)
