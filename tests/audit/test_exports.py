"""Exports: FHIR AuditEvent validated by fhir.resources; ATNA XML checked against PS3.15 A.5.1."""

from __future__ import annotations

import csv
import io
import json
from xml.etree import ElementTree as ET

from fhir.resources.auditevent import AuditEvent as FhirAuditEvent
from fhir.resources.bundle import Bundle

from trialpacs.audit.chain import AuditEvent, _values
from trialpacs.audit.exports import to_atna_xml, to_csv, to_fhir, to_fhir_bundle, to_json

GENESIS = "0" * 64


def _entries() -> list[dict[str, object]]:
    events = [
        AuditEvent(
            action="GET /dicomweb/studies/{study}/series/{series}/instances/{sop}",
            actor="reader1",
            roles=["reader@T1"],
            address="10.1.2.3",
            agent="OHIF",
            trial="T1",
            site="S1",
            study="1.2.3",
            series="1.2.3.4",
            sop="1.2.3.4.5",
        ),
        AuditEvent(action="auth.login.fail", outcome="failure", object="=cmd|x", reason="bad"),
        AuditEvent(
            action="config.apply",
            actor="admin",
            old_value="a",
            new_value="b",
            reason="protocol amendment",
            trial="T1",
        ),
    ]
    return [_values(e, i + 1, GENESIS, "2026-11-28T04:00:00.000000Z") for i, e in enumerate(events)]


def test_fhir_audit_events_validate() -> None:
    for entry in _entries():
        resource = FhirAuditEvent.model_validate(to_fhir(entry))
        assert resource.recorded is not None
    bundle = Bundle.model_validate(json.loads(to_fhir_bundle(_entries())))
    assert bundle.entry is not None and len(bundle.entry) == 3


def test_csv_and_json_round_trip_and_neutralise_formulas() -> None:
    rows = list(csv.DictReader(io.StringIO(to_csv(_entries()))))
    assert rows[0]["study"] == "1.2.3" and rows[0]["actor"] == "reader1"
    assert rows[1]["object"] == "'=cmd|x"
    assert json.loads(to_json(_entries()))[2]["reason"] == "protocol amendment"


# Required structure of PS3.15 A.5.1 (the RELAX NG schema's mandatory parts):
# EventIdentification with EventActionCode/EventDateTime/EventOutcomeIndicator
# and an EventID code; at least one ActiveParticipant with UserID and
# UserIsRequestor; AuditSourceIdentification with AuditSourceID; participant
# objects with ParticipantObjectID, TypeCode and an IDTypeCode.
_ACTION_CODES = {"C", "R", "U", "D", "E"}
_OUTCOMES = {"0", "4", "8", "12"}


def _check_message(msg: ET.Element) -> None:
    assert msg.tag == "AuditMessage"
    children = [c.tag for c in msg]
    assert children[0] == "EventIdentification"
    ev = msg.find("EventIdentification")
    assert ev is not None
    assert ev.get("EventActionCode") in _ACTION_CODES
    assert ev.get("EventOutcomeIndicator") in _OUTCOMES
    assert ev.get("EventDateTime", "").endswith("Z")
    event_id = ev.find("EventID")
    assert (event_id is not None and event_id.get("csd-code")) or event_id.get("csd_code")
    assert event_id.get("codeSystemName") and event_id.get("originalText")
    participants = msg.findall("ActiveParticipant")
    assert participants and all(p.get("UserID") for p in participants)
    assert all(p.get("UserIsRequestor") in ("true", "false") for p in participants)
    source = msg.find("AuditSourceIdentification")
    assert source is not None and source.get("AuditSourceID")
    order = ["EventIdentification", "ActiveParticipant", "AuditSourceIdentification",
             "ParticipantObjectIdentification"]  # fmt: skip
    assert [order.index(t) for t in children] == sorted(order.index(t) for t in children)
    for obj in msg.findall("ParticipantObjectIdentification"):
        assert obj.get("ParticipantObjectID") and obj.get("ParticipantObjectTypeCode")
        assert obj.find("ParticipantObjectIDTypeCode") is not None


def test_atna_messages_have_the_required_structure() -> None:
    root = ET.fromstring(to_atna_xml(_entries()))
    messages = list(root)
    assert len(messages) == 3
    for msg in messages:
        _check_message(msg)
    study = messages[0].find("ParticipantObjectIdentification")
    assert study is not None and study.get("ParticipantObjectID") == "1.2.3"
