"""What a file is, judged on its bytes (the file name is only a tie-breaker)."""

from __future__ import annotations

import enum
import json

from trialpacs.errors import InvalidInput


class RecordFormat(enum.StrEnum):
    PDF = "pdf"
    TEXT = "text"
    HL7V2 = "hl7v2"
    FHIR = "fhir"
    VIDEO = "video"
    DICOM = "dicom"


MEDIA_TYPES = {
    RecordFormat.PDF: "application/pdf",
    RecordFormat.TEXT: "text/plain; charset=utf-8",
    RecordFormat.HL7V2: "x-application/hl7-v2+er7",
    RecordFormat.FHIR: "application/fhir+json",
    RecordFormat.VIDEO: "video/mp4",
    RecordFormat.DICOM: "application/dicom",
}
EXTENSIONS = {
    RecordFormat.PDF: ".pdf",
    RecordFormat.TEXT: ".txt",
    RecordFormat.HL7V2: ".hl7",
    RecordFormat.FHIR: ".json",
    RecordFormat.VIDEO: ".mp4",
    RecordFormat.DICOM: ".dcm",
}
_FHIR_TYPES = frozenset({"Bundle", "DiagnosticReport", "DocumentReference"})
# ISO BMFF (MP4, MOV, M4V) starts with a box whose type is one of these.
_BMFF_BOXES = (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip")


def detect_format(data: bytes, filename: str = "") -> RecordFormat:
    """The record format of ``data``; InvalidInput naming what was seen otherwise."""
    if not data:
        raise InvalidInput("the file is empty")
    if len(data) > 132 and data[128:132] == b"DICM":
        return RecordFormat.DICOM
    if data.lstrip()[:5] == b"%PDF-" or data[:1024].find(b"%PDF-") >= 0:
        return RecordFormat.PDF
    if len(data) >= 12 and data[4:8] in _BMFF_BOXES:
        return RecordFormat.VIDEO
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("latin-1") if b"MSH|" in data[:16] else ""
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes anything
            text = ""
        if not text:
            name = filename or "the file"
            raise InvalidInput(
                f"{name}: not a PDF, MP4/MOV video, DICOM file, HL7 v2 message, FHIR JSON "
                "or UTF-8 text"
            ) from None
    stripped = text.lstrip()
    if stripped.startswith("MSH|") or stripped.startswith("MSH^"):
        return RecordFormat.HL7V2
    if stripped.startswith("{"):
        try:
            doc = json.loads(stripped)
        except ValueError as exc:
            raise InvalidInput(f"looks like JSON but does not parse: {exc}") from exc
        kind = doc.get("resourceType") if isinstance(doc, dict) else None
        if kind in _FHIR_TYPES:
            return RecordFormat.FHIR
        raise InvalidInput(
            f"JSON with resourceType {kind!r}: expected a FHIR Bundle, DiagnosticReport "
            "or DocumentReference"
        )
    if "\x00" in text:
        raise InvalidInput("binary data that is not a PDF, video or DICOM file")
    return RecordFormat.TEXT
