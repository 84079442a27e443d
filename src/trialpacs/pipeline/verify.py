"""Residual PHI scan of a de-identified instance before it may be published.

Independent of how the engine worked: it compares the output with the
identifying values of the input (names, IDs, addresses, phone numbers), the
original UIDs, and the markers a de-identified instance must carry. Any hit
stops publication. Burned-in text that no pixel cleaner looked at counts as a
hit when the instance says it has some (BurnedInAnnotation YES).

Thin adapter note: the deid library has no ``verify`` module yet; when it
lands, :func:`verify_instance` should call it in addition to these checks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from trialpacs.deid.engine import phi_values

_SCANNED_LABELS = frozenset({"NAME", "ID", "ADDRESS", "PHONE"})
_TEXT_VRS = frozenset({"PN", "LO", "SH", "ST", "LT", "UT", "UC", "CS", "AE", "UR"})
MIN_TERM = 4  # shorter values ("S1", "MR") match too much by chance


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    problems: tuple[str, ...] = ()


def _strings(ds: Dataset, depth: int = 0) -> Iterator[tuple[str, str]]:
    for elem in ds:
        if elem.VR == "SQ":
            if depth < 16:
                for item in elem.value or []:
                    yield from _strings(item, depth + 1)
            continue
        if elem.VR in _TEXT_VRS or elem.VR == "UI":
            value = elem.value
            if value is None:
                continue
            values = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
            for v in values:
                yield elem.keyword or str(elem.tag), str(v)


@dataclass(frozen=True)
class Originals:
    """What verification needs of the input, taken before it is de-identified in place."""

    terms: frozenset[str]
    uids: frozenset[str]


def originals(original: Dataset) -> Originals:
    terms = {
        text.upper()
        for _, label, text in phi_values(original)
        if label in _SCANNED_LABELS and len(text) >= MIN_TERM
    }
    uids = {
        str(original.get(k, ""))
        for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
        if original.get(k)
    }
    return Originals(frozenset(terms), frozenset(uids))


def verify_instance(
    original: Dataset | Originals, output: Dataset, subject_id: str, *, pixels_cleaned: bool
) -> VerifyResult:
    problems: list[str] = []
    if str(output.get("PatientIdentityRemoved", "")).upper() != "YES":
        problems.append("PatientIdentityRemoved is not YES")
    if str(output.get("PatientID", "")) != subject_id:
        problems.append("PatientID is not the subject pseudonym")
    before = original if isinstance(original, Originals) else originals(original)
    terms = set(before.terms) - {subject_id.upper()}
    uids = before.uids
    for keyword, value in _strings(output):
        upper = value.upper()
        for term in terms:
            if term in upper:
                problems.append(f"{keyword} still holds an identifying value")
                break
        if value in uids:
            problems.append(f"{keyword} still holds an original UID")
    burned = str(output.get("BurnedInAnnotation", "")).upper() == "YES"
    if burned and not pixels_cleaned:
        problems.append("BurnedInAnnotation is YES and no pixel cleaner ran")
    return VerifyResult(not problems, tuple(dict.fromkeys(problems)))
