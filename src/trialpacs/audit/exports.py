"""Audit exports: CSV and JSON for people, FHIR AuditEvent and DICOM ATNA for machines."""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any
from xml.etree import ElementTree as ET

COLUMNS = (
    "seq", "at", "actor", "roles", "address", "agent", "action", "outcome", "trial", "site",
    "study", "series", "sop", "object", "old_value", "new_value", "reason", "detail",
    "prev_hash", "hash",
)  # fmt: skip


def to_csv(entries: Iterable[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for e in entries:
        # A leading = + - @ would be a formula in a spreadsheet; actors and
        # reasons come from people, so they are neutralised.
        writer.writerow({k: _cell(e.get(k, "")) for k in COLUMNS})
    return buf.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


def to_json(entries: Iterable[dict[str, Any]]) -> str:
    return json.dumps(list(entries), indent=2, ensure_ascii=False)


_OUTCOME_FHIR = {"success": "0", "failure": "4", "denied": "4", "error": "8"}
_OUTCOME_DICOM = _OUTCOME_FHIR


def _dcm_event(action: str) -> tuple[str, str, str]:
    """DICOM (DCM) event ID and FHIR/DICOM action code (C R U D E) for an action."""
    if action.startswith(("auth.login", "auth.logout", "auth.lockout")):
        return "110114", "User Authentication", "E"
    if action.startswith("audit."):
        return "110101", "Audit Log Used", "R"
    if action.startswith(("store", "stow", "POST /dicomweb")):
        return "110104", "DICOM Instances Transferred", "C"
    if action.startswith(("qido", "GET /dicomweb/studies", "query")):
        return "110112", "Query", "E"
    if action.startswith(("config", "permission", "role.", "user.")):
        return "110100", "Application Activity", "U"
    if action.startswith("deid") or action.startswith("publish"):
        return "110103", "DICOM Instances Accessed", "C"
    return "110103", "DICOM Instances Accessed", "R"


def to_fhir(entry: dict[str, Any]) -> dict[str, Any]:
    """One FHIR R5 AuditEvent (the version fhir.resources validates by default)."""
    code, display, act = _dcm_event(entry["action"])
    agent: dict[str, Any] = {
        "who": {"display": entry["actor"] or "system"},
        "requestor": True,
    }
    if entry.get("address"):
        agent["networkString"] = entry["address"]
    entities: list[dict[str, Any]] = []
    for kind in ("study", "series", "sop"):
        if entry.get(kind):
            entities.append(
                {
                    "what": {
                        "identifier": {"system": "urn:dicom:uid", "value": f"urn:oid:{entry[kind]}"}
                    },
                    "role": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/object-role",
                                "code": "3" if kind == "study" else "4",
                            }
                        ]
                    },
                }
            )
    if entry.get("trial") or entry.get("site") or entry.get("object"):
        entities.append(
            {
                "what": {
                    "display": entry.get("object")
                    or "/".join(x for x in (entry.get("trial"), entry.get("site")) if x)
                },
                "detail": [
                    {"type": {"text": k}, "valueString": entry[k]}
                    for k in ("trial", "site", "old_value", "new_value", "reason")
                    if entry.get(k)
                ]
                or None,
            }
        )
    for e in entities:
        if e.get("detail") is None:
            e.pop("detail", None)
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": f"audit-{entry['seq']}",
        "code": {
            "coding": [
                {
                    "system": "http://dicom.nema.org/resources/ontology/DCM",
                    "code": code,
                    "display": display,
                }
            ],
            "text": entry["action"],
        },
        "action": act,
        "recorded": entry["at"],
        "outcome": {
            "code": {
                "system": "http://terminology.hl7.org/CodeSystem/audit-event-outcome",
                "code": _OUTCOME_FHIR.get(entry["outcome"], "4"),
            }
        },
        "agent": [agent],
        "source": {"observer": {"display": "trialpacs"}},
    }
    if entities:
        resource["entity"] = entities
    return resource


def to_fhir_bundle(entries: Iterable[dict[str, Any]]) -> str:
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": to_fhir(e)} for e in entries],
    }
    return json.dumps(bundle, indent=2, ensure_ascii=False)


def to_atna(entry: dict[str, Any]) -> ET.Element:
    """A DICOM PS3.15 A.5 AuditMessage for one entry."""
    code, display, act = _dcm_event(entry["action"])
    msg = ET.Element("AuditMessage")
    ev = ET.SubElement(
        msg,
        "EventIdentification",
        EventActionCode=act,
        EventDateTime=entry["at"],
        EventOutcomeIndicator=_OUTCOME_DICOM.get(entry["outcome"], "4"),
    )
    ET.SubElement(ev, "EventID", csd_code=code, codeSystemName="DCM", originalText=display)
    ET.SubElement(
        ev,
        "EventTypeCode",
        csd_code=entry["action"][:64],
        codeSystemName="trialpacs",
        originalText=entry["action"],
    )
    if entry["outcome"] != "success" and entry.get("reason"):
        ET.SubElement(ev, "EventOutcomeDescription").text = entry["reason"]
    user = ET.SubElement(
        msg, "ActiveParticipant", UserID=entry["actor"] or "system", UserIsRequestor="true"
    )
    if entry.get("address"):
        user.set("NetworkAccessPointID", entry["address"])
        user.set("NetworkAccessPointTypeCode", "2")
    for role in filter(None, entry.get("roles", "").split(",")):
        ET.SubElement(
            user, "RoleIDCode", csd_code=role[:64], codeSystemName="trialpacs", originalText=role
        )
    src = ET.SubElement(msg, "AuditSourceIdentification", AuditSourceID="trialpacs")
    ET.SubElement(
        src,
        "AuditSourceTypeCode",
        csd_code="4",
        codeSystemName="DCM",
        originalText="Application Server Process",
    )
    if entry.get("study"):
        details = [("SeriesInstanceUID", entry["series"])] if entry.get("series") else []
        obj = _participant(
            msg, entry["study"], "2", "3", ("110180", "DCM", "Study Instance UID"),
            entry["study"], details,
        )  # fmt: skip
        if entry.get("sop"):
            desc = ET.SubElement(obj, "ParticipantObjectDescription")
            ET.SubElement(
                ET.SubElement(desc, "SOPClass", NumberOfInstances="1"),
                "Instance",
                UID=entry["sop"],
            )
    for key in ("trial", "site"):
        if entry.get(key):
            _participant(msg, entry[key], "2", "13", (key, "trialpacs", key), entry[key], [])
    if entry.get("object") or entry.get("old_value") or entry.get("new_value"):
        # What changed or was signed: old/new value and reason as base64 value pairs
        # (a signature's manifestation is its new value).
        details = [(k, entry[k]) for k in ("old_value", "new_value", "reason") if entry.get(k)]
        name = entry.get("object") or entry["action"]
        _participant(msg, name, "2", "4", ("object", "trialpacs", "object"), name, details)
    # The schema's attribute is ``csd-code``, which is no Python keyword argument.
    for el in msg.iter():
        if "csd_code" in el.attrib:
            el.set("csd-code", el.attrib.pop("csd_code"))
    return msg


def _participant(
    msg: ET.Element,
    object_id: str,
    type_code: str,
    role: str,
    id_type: tuple[str, str, str],
    name: str,
    details: list[tuple[str, str]],
) -> ET.Element:
    """A ParticipantObjectIdentification in the schema's order: ID type, name, details."""
    obj = ET.SubElement(
        msg,
        "ParticipantObjectIdentification",
        ParticipantObjectID=object_id,
        ParticipantObjectTypeCode=type_code,
        ParticipantObjectTypeCodeRole=role,
    )
    code, system, text = id_type
    ET.SubElement(
        obj, "ParticipantObjectIDTypeCode", csd_code=code, codeSystemName=system, originalText=text
    )
    ET.SubElement(obj, "ParticipantObjectName").text = name
    for kind, value in details:
        ET.SubElement(
            obj,
            "ParticipantObjectDetail",
            type=kind,
            value=base64.b64encode(value.encode()).decode(),
        )
    return obj


def to_atna_xml(entries: Iterable[dict[str, Any]]) -> str:
    root = ET.Element("AuditMessages")
    for e in entries:
        root.append(to_atna(e))
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


FORMATS = ("csv", "json", "fhir", "atna")
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "fhir": "application/fhir+json",
    "atna": "application/xml",
}


def stream(fmt: str, pages: Iterable[list[dict[str, Any]]]) -> Iterator[str]:
    """The export of ``fmt`` as text chunks, one page of entries at a time, so an
    export of the whole trail never sits in memory (HTTP streams it)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: {', '.join(FORMATS)}")
    first = True
    if fmt == "json":
        yield "["
    elif fmt == "fhir":
        yield '{"resourceType":"Bundle","type":"collection","entry":['
    elif fmt == "atna":
        yield "<?xml version='1.0' encoding='utf-8'?>\n<AuditMessages>"
    elif fmt == "csv":
        yield to_csv([])
    for page in pages:
        if fmt == "csv":
            yield to_csv(page).split("\r\n", 1)[1]
            continue
        for e in page:
            if fmt == "atna":
                yield ET.tostring(to_atna(e), encoding="unicode")
                continue
            item = e if fmt == "json" else {"resource": to_fhir(e)}
            yield ("" if first else ",") + json.dumps(item, ensure_ascii=False)
            first = False
    yield {"json": "]", "fhir": "]}", "atna": "</AuditMessages>\n", "csv": ""}[fmt]
