"""Who a record is about, as the site knows them (identified: quarantine only)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from trialpacs.errors import InvalidInput

_DA = re.compile(r"^\d{8}$")


@dataclass(frozen=True)
class PatientIdentity:
    """The values a DICOM wrapper's Patient module carries.

    ``patient_id`` and ``issuer`` must be what the site's PACS sends with the
    images: the pseudonym is keyed on issuer + PatientID, so equal values
    give the record the subject ID of the images. ``name`` is a DICOM PN
    (``FAMILY^GIVEN``); ``birth_date`` is YYYYMMDD. ``extra`` holds other
    identifying values found in the record (address, phone, MRNs) as
    (label, text) pairs for the PHI detector.
    """

    patient_id: str
    name: str = ""
    birth_date: str = ""
    sex: str = ""
    issuer: str = ""
    extra: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.patient_id.strip():
            raise InvalidInput("a patient ID is required to link the record to its subject")
        if len(self.patient_id) > 64:
            raise InvalidInput("patient ID is longer than 64 characters")
        if self.birth_date and not _DA.match(self.birth_date):
            raise InvalidInput(f"birth date {self.birth_date!r} is not YYYYMMDD")
        if self.sex and self.sex not in ("M", "F", "O"):
            raise InvalidInput(f"sex {self.sex!r} is not M, F or O")
