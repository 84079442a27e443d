"""Patient identity for a record file from a JSON sidecar next to it (``NAME.EXT.json``).

``trialpacs import --trial --site`` reads folders and zips: a PDF or a video
does not name its patient, and one ``--patient-id`` for a whole folder fits
only a folder about one patient. A sidecar says who each file is about, in
the fields of the upload form.
"""

from __future__ import annotations

import json
from dataclasses import replace

from trialpacs.errors import InvalidInput
from trialpacs.records.identity import PatientIdentity
from trialpacs.records.intake import Intake

SUFFIX = ".json"
_PATIENT = ("patient_id", "patient_name", "birth_date", "sex", "issuer")
_INTAKE = ("study_uid", "time_point", "description", "modality")
FIELDS = frozenset(_PATIENT + _INTAKE)


def sidecar_name(label: str) -> str:
    """The sidecar of ``scan.pdf`` is ``scan.pdf.json``."""
    return label + SUFFIX


def read_sidecar(data: bytes, label: str, base: Intake) -> Intake:
    """``base`` (the command's options) with what the sidecar says; InvalidInput naming it."""
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput(f"sidecar {label}: not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise InvalidInput(f"sidecar {label}: expected a JSON object")
    unknown = sorted(set(doc) - FIELDS)
    if unknown:
        raise InvalidInput(
            f"sidecar {label}: unknown field(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(FIELDS))}"
        )
    bad = sorted(k for k, v in doc.items() if not isinstance(v, str))
    if bad:
        raise InvalidInput(f"sidecar {label}: {', '.join(bad)} must be strings")
    if not doc.get("patient_id", "").strip():
        raise InvalidInput(f"sidecar {label}: patient_id is required")
    try:
        patient = PatientIdentity(
            doc["patient_id"],
            doc.get("patient_name", ""),
            doc.get("birth_date", ""),
            doc.get("sex", ""),
            doc.get("issuer", ""),
        )
    except InvalidInput as exc:
        raise InvalidInput(f"sidecar {label}: {exc}") from None
    return replace(base, patient=patient, **{k: doc[k] for k in _INTAKE if k in doc})
