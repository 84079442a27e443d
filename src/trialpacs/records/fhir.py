"""FHIR R4 DiagnosticReport / DocumentReference (alone or in a Bundle): read and de-identify.

Handled as JSON with a documented element profile (docs/records.md) rather
than through model classes: ``fhir.resources`` 8 models R5, and a cleaner
must keep elements it does not know instead of refusing them. The walk is
generic, so every resource type is covered:

* Patient resources: ``id`` becomes a keyed token, ``identifier`` one
  subject-ID identifier, ``name`` the subject ID; ``telecom``, ``address``,
  ``photo``, ``contact``, ``link``, ``generalPractitioner``,
  ``managingOrganization``, ``extension``, ``text`` go;
  ``birthDate``/``deceasedDateTime`` are shifted.
* Practitioner, PractitionerRole, RelatedPerson, Person, Organization,
  Location, Encounter resources are dropped from the bundle, and references
  to them removed; references to the patient follow its new id.
* Everywhere: ``identifier``/``masterIdentifier``, ``telecom``, ``address``,
  ``text`` (narrative), ``url`` of attachments and ``meta`` go; dates and
  date-times are shifted by the subject's shift; free strings (``display``,
  ``conclusion``, ``description``, ``title``, ``note``, ...) go through the
  PHI engine; codes, systems, units and statuses are kept. Attachments with
  inline ``data`` are de-identified by their content type: text is scrubbed,
  PDF is redacted like any PDF, anything else is removed.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from trialpacs.errors import InvalidInput
from trialpacs.records.identity import PatientIdentity
from trialpacs.records.phi import RecordPhi

DROPPED_TYPES = frozenset(
    {
        "Practitioner",
        "PractitionerRole",
        "RelatedPerson",
        "Person",
        "Organization",
        "Location",
        "Encounter",
    }
)
REMOVED_KEYS = frozenset(
    {"identifier", "masterIdentifier", "telecom", "address", "text", "meta", "photo", "contact"}
)
PATIENT_REMOVED = frozenset(
    {
        "link",
        "generalPractitioner",
        "managingOrganization",
        "extension",
        "modifierExtension",
        "communication",
        "maritalStatus",
        "multipleBirthInteger",
        "multipleBirthBoolean",
    }
)
KEPT_STRINGS = frozenset(
    {
        "resourceType",
        "system",
        "code",
        "version",
        "unit",
        "status",
        "contentType",
        "language",
        "use",
        "gender",
        "type",
        "mode",
        "method",
        "comparator",
        "profile",
        "docStatus",
        "category",
        "interpretation",
        "relation",
    }
)
MAX_DEPTH = 40
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(T[\d:.]+(?:Z|[+-]\d{2}:\d{2})?)?$")


@dataclass
class FhirResult:
    document: dict[str, Any]
    removed_resources: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return json.dumps(self.document, indent=2, ensure_ascii=False) + "\n"


def load(text: str) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"FHIR: not JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("resourceType") not in (
        "Bundle",
        "DiagnosticReport",
        "DocumentReference",
    ):
        raise InvalidInput("FHIR: expected a Bundle, DiagnosticReport or DocumentReference")
    return doc


def resources(doc: dict[str, Any]) -> list[dict[str, Any]]:
    if doc.get("resourceType") != "Bundle":
        out = [doc]
        out += [c for c in doc.get("contained", []) if isinstance(c, dict)]
        return out
    entries = doc.get("entry") or []
    return [
        e["resource"]
        for e in entries
        if isinstance(e, dict) and isinstance(e.get("resource"), dict)
    ]


def patient_identity(doc: dict[str, Any]) -> PatientIdentity:
    """The one Patient of the document (bundle entry or contained); InvalidInput otherwise."""
    patients = [r for r in resources(doc) if r.get("resourceType") == "Patient"]
    if len(patients) != 1:
        raise InvalidInput(
            f"FHIR: expected exactly one Patient resource in the document, found {len(patients)}"
        )
    p = patients[0]
    ids = [i for i in p.get("identifier", []) if isinstance(i, dict) and i.get("value")]
    if not ids:
        raise InvalidInput("FHIR: the Patient has no identifier with a value")
    mrn = next((i for i in ids if _is_mrn(i)), ids[0])
    extra: list[tuple[str, str]] = [("ID", str(i["value"])) for i in ids if i is not mrn]
    name = ""
    for n in p.get("name", []):
        family = str(n.get("family", ""))
        given = [str(g) for g in n.get("given", [])]
        if not name and family:
            name = "^".join([family, *given[:1]])
        extra += [("NAME", x) for x in [family, *given] if x]
        if n.get("text"):
            extra.append(("NAME", str(n["text"])))
    for t in p.get("telecom", []):
        if t.get("value"):
            extra.append(("EMAIL" if t.get("system") == "email" else "PHONE", str(t["value"])))
    for a in p.get("address", []):
        for line in a.get("line", []):
            extra.append(("ADDRESS", str(line)))
        for k in ("city", "postalCode"):
            if a.get(k):
                extra.append(("ADDRESS", str(a[k])))
    for r in resources(doc):
        if r.get("resourceType") in DROPPED_TYPES:
            for n in r.get("name", []) if isinstance(r.get("name"), list) else []:
                if isinstance(n, dict):
                    extra += [("NAME", str(x)) for x in [n.get("family"), *n.get("given", [])] if x]
            if isinstance(r.get("name"), str):
                extra.append(("INSTITUTION", r["name"]))
    birth = str(p.get("birthDate", "")).replace("-", "")
    gender = {"male": "M", "female": "F", "other": "O"}.get(str(p.get("gender", "")), "")
    issuer = str(mrn.get("system", ""))[:64]
    return PatientIdentity(
        patient_id=str(mrn["value"]),
        name=name,
        birth_date=birth if re.fullmatch(r"\d{8}", birth) else "",
        sex=gender,
        issuer=issuer,
        extra=tuple(extra),
    )


def _is_mrn(identifier: dict[str, Any]) -> bool:
    codings = (
        identifier.get("type", {}).get("coding", [])
        if isinstance(identifier.get("type"), dict)
        else []
    )
    return any(c.get("code") == "MR" for c in codings if isinstance(c, dict))


def report_text(doc: dict[str, Any]) -> str:
    """The narrative: conclusions, descriptions and inline text attachments."""
    out: list[str] = []
    for r in resources(doc):
        for key in ("conclusion", "description"):
            if isinstance(r.get(key), str):
                out.append(r[key])
        for att in _attachments(r):
            if str(att.get("contentType", "")).startswith("text/") and att.get("data"):
                out.append(_b64text(att["data"]))
    return "\n".join(out)


def _attachments(r: dict[str, Any]) -> list[dict[str, Any]]:
    atts = [a for a in r.get("presentedForm", []) if isinstance(a, dict)]
    for c in r.get("content", []):
        if isinstance(c, dict) and isinstance(c.get("attachment"), dict):
            atts.append(c["attachment"])
    return atts


def _b64text(data: str) -> str:
    try:
        return base64.b64decode(data, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidInput(f"FHIR: an attachment's data is not base64 UTF-8 text: {exc}") from exc


def shift_fhir_date(value: str, days: int | None) -> str | None:
    """A FHIR date/dateTime/instant shifted by whole days; None when not a full date."""
    m = _DATE.match(value)
    if not m or days is None:
        return None
    try:
        d = dt.date(int(m[1]), int(m[2]), int(m[3])) + dt.timedelta(days=days)
    except (ValueError, OverflowError):
        return None
    return d.isoformat() + (m[4] or "")


class _Cleaner:
    def __init__(
        self,
        phi: RecordPhi,
        trial_id: str,
        secret_token: Callable[[str], str],
        pdf: Callable[[bytes], bytes] | None,
    ) -> None:
        self.phi = phi
        self.trial_id = trial_id
        self.token = secret_token
        self.pdf = pdf
        self.dropped_refs: set[str] = set()
        self.patient_refs: dict[str, str] = {}

    def value(self, key: str, v: Any, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise InvalidInput("FHIR: the document is nested too deeply")
        if isinstance(v, dict):
            return self.obj(v, depth + 1)
        if isinstance(v, list):
            out = [self.value(key, x, depth + 1) for x in v]
            return [x for x in out if x is not _DROP]
        if isinstance(v, str):
            return self.string(key, v)
        return v

    def string(self, key: str, v: str) -> Any:
        if key in KEPT_STRINGS:
            return v
        if key in ("reference", "fullUrl"):
            return self.reference(v)
        if key == "id":
            return v
        shifted = shift_fhir_date(v, self.phi.shift)
        if shifted is not None:
            return shifted
        if _DATE.match(v) or re.fullmatch(r"\d{4}(-\d{2})?", v):
            return v if re.fullmatch(r"\d{4}", v) else v[:4]
        return self.phi.scrub(v)

    def reference(self, v: str) -> Any:
        if v in self.dropped_refs:
            return _DROP
        if v in self.patient_refs:
            return self.patient_refs[v]
        if v.startswith(("http://", "https://")) or "/_history/" in v:
            return _DROP  # absolute server URLs name the hospital's FHIR server
        return v

    def obj(self, o: dict[str, Any], depth: int) -> Any:
        if o.get("resourceType") == "Patient":
            return self.patient(o)
        if o.get("resourceType") in DROPPED_TYPES:
            return _DROP
        if "contentType" in o and ("data" in o or "url" in o):
            return self.attachment(o)
        out: dict[str, Any] = {}
        for k, v in o.items():
            if k in REMOVED_KEYS:
                continue
            new = self.value(k, v, depth)
            if new is _DROP:
                continue
            if isinstance(new, dict | list) and not new and v:
                continue  # everything in it went
            out[k] = new
        if set(out) <= {"display", "type"} and "reference" in o:
            return _DROP  # a reference whose target was dropped
        if "display" in out and "reference" in o:
            ref = o.get("reference", "")
            if ref in self.patient_refs:
                out["display"] = self.phi.subject_id
        return out

    def patient(self, p: dict[str, Any]) -> dict[str, Any]:
        new_id = self.patient_refs.get(f"Patient/{p.get('id', '')}", "Patient/").split("/", 1)[1]
        out: dict[str, Any] = {"resourceType": "Patient"}
        if new_id:
            out["id"] = new_id
        out["identifier"] = [
            {"system": f"urn:trialpacs:trial:{self.trial_id}:subject", "value": self.phi.subject_id}
        ]
        out["name"] = [{"text": self.phi.subject_id}]
        if "gender" in p:
            out["gender"] = p["gender"]
        for k in ("birthDate", "deceasedDateTime"):
            if isinstance(p.get(k), str):
                shifted = shift_fhir_date(p[k], self.phi.shift)
                if shifted is not None:
                    out[k] = shifted
        if isinstance(p.get("deceasedBoolean"), bool):
            out["deceasedBoolean"] = p["deceasedBoolean"]
        return out

    def attachment(self, a: dict[str, Any]) -> Any:
        ctype = str(a.get("contentType", ""))
        out: dict[str, Any] = {"contentType": ctype}
        if a.get("language"):
            out["language"] = a["language"]
        if isinstance(a.get("title"), str):
            out["title"] = self.phi.scrub(a["title"])
        if isinstance(a.get("creation"), str):
            shifted = shift_fhir_date(a["creation"], self.phi.shift)
            if shifted:
                out["creation"] = shifted
        data = a.get("data")
        if not isinstance(data, str):
            return _DROP  # only a URL: the content lives on the hospital's server
        if ctype.startswith("text/"):
            cleaned = self.phi.scrub(_b64text(data)).encode()
        elif ctype == "application/pdf" and self.pdf is not None:
            try:
                raw = base64.b64decode(data, validate=True)
            except binascii.Error as exc:
                raise InvalidInput(f"FHIR: PDF attachment is not base64: {exc}") from exc
            cleaned = self.pdf(raw)
        else:
            return _DROP
        out["data"] = base64.b64encode(cleaned).decode()
        out["size"] = len(cleaned)
        out["hash"] = base64.b64encode(hashlib.sha1(cleaned).digest()).decode()
        return out


class _Drop:
    pass


_DROP: Any = _Drop()


def deidentify(
    text: str,
    phi: RecordPhi,
    *,
    trial_id: str,
    token: Callable[[str], str],
    pdf: Callable[[bytes], bytes] | None = None,
) -> FhirResult:
    """``token(value)`` gives the keyed replacement of a resource id (same on every run)."""
    doc = load(text)
    cleaner = _Cleaner(phi, trial_id, token, pdf)
    removed: list[str] = []
    entries = doc.get("entry", []) if doc.get("resourceType") == "Bundle" else []
    for e in entries if isinstance(entries, list) else []:
        r = e.get("resource") if isinstance(e, dict) else None
        if not isinstance(r, dict):
            continue
        rtype, rid = r.get("resourceType"), r.get("id", "")
        full = e.get("fullUrl", "")
        if rtype == "Patient":
            new = f"Patient/{token(f'Patient/{rid or full}')}"
            for ref in (f"Patient/{rid}", full):
                if ref and ref != "Patient/":
                    cleaner.patient_refs[ref] = (
                        new if ref.startswith("Patient/") else f"urn:uuid:{new.split('/')[1]}"
                    )
        elif rtype in DROPPED_TYPES:
            removed.append(str(rtype))
            cleaner.dropped_refs.update(
                x for x in (f"{rtype}/{rid}", full) if x and not x.endswith("/")
            )
    for c in doc.get("contained", []) if isinstance(doc.get("contained"), list) else []:
        if isinstance(c, dict) and c.get("resourceType") == "Patient":
            cleaner.patient_refs[f"#{c.get('id', '')}"] = f"#{c.get('id', '')}"
    cleaned = cleaner.obj(doc, 0)
    if doc.get("resourceType") == "Bundle":
        cleaned["entry"] = [
            e for e in cleaned.get("entry", []) if isinstance(e, dict) and "resource" in e
        ]
        if "id" in doc:
            cleaned["id"] = token(f"Bundle/{doc['id']}")
    return FhirResult(cleaned, removed)
