"""C-FIND, C-MOVE and C-GET identifiers mapped onto the QIDO query model.

C-FIND answers must never disagree with QIDO-RS for the same question, so
an identifier is translated into a :class:`trialpacs.index.qido.Query` and
run by the same :func:`trialpacs.index.qido.search`; only the translation
and the trimming of the answer to the requested keys live here. The PATIENT
level of the Patient Root model is a study-level search folded by patient,
which keeps the patient attributes and their matching in one place (the
study rows already carry them).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from sqlalchemy.orm import Session

from trialpacs.errors import InvalidInput
from trialpacs.index import lookup, qido
from trialpacs.index.lookup import InstanceRef

DimseLevel = Literal["PATIENT", "STUDY", "SERIES", "IMAGE"]
LEVELS: dict[str, qido.Level | None] = {
    "PATIENT": None,
    "STUDY": "study",
    "SERIES": "series",
    "IMAGE": "instance",
}
QR_LEVEL = "00080052"
CHARSET = "00080005"
PATIENT_ATTRS = ("00100010", "00100020", "00100030", "00100040")
# Patient-level counts folded from the study rows (PS3.4 C.6.1.1.3).
PATIENT_STUDIES = "00201200"
PATIENT_SERIES = "00201202"
PATIENT_INSTANCES = "00201204"
STUDY_SERIES = "00201206"
STUDY_INSTANCES = "00201208"


@dataclass(frozen=True)
class Identifier:
    """A request identifier as plain values: tag -> matching value ('' = return key)."""

    level: DimseLevel
    keys: Mapping[str, str] = field(default_factory=dict)
    sequences: frozenset[str] = frozenset()

    @classmethod
    def from_dataset(cls, ds: Dataset) -> Identifier:
        level = str(ds.get("QueryRetrieveLevel", "") or "").strip().upper()
        if level not in LEVELS:
            raise InvalidInput(
                f"QueryRetrieveLevel (0008,0052) must be PATIENT, STUDY, SERIES or IMAGE, "
                f"got {level!r}"
            )
        keys: dict[str, str] = {}
        sequences: set[str] = set()
        for elem in ds:
            tag = f"{int(elem.tag):08X}"
            if tag in (QR_LEVEL, CHARSET) or tag.startswith("0002"):
                continue
            if elem.VR == "SQ":
                sequences.add(tag)
                keys[tag] = ""
                continue
            keys[tag] = _text(elem.value)
        return cls(level=level, keys=keys, sequences=frozenset(sequences))  # type: ignore[arg-type]


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(v) for v in value)
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").strip("\x00 ")
    return str(value).strip("\x00 ") if not isinstance(value, str) else value.strip("\x00")


def find(
    session: Session, ident: Identifier, *, max_results: int | None, visible: Any = None
) -> Iterator[Dataset]:
    """Every match as a response identifier holding exactly the requested keys.

    ``visible`` is the caller's condition (trialpacs.access.visibility): a study
    it may not see is not matched, exactly like one that is not there.
    """
    if ident.level == "PATIENT":
        yield from _find_patients(session, ident, max_results, visible)
        return
    query = replace(to_query(ident, max_results=max_results), visible=visible)
    result = qido.search(session, query)
    for item in result.items:
        yield to_dataset(ident, item)


def to_query(ident: Identifier, *, max_results: int | None) -> qido.Query:
    level = LEVELS[ident.level]
    assert level is not None
    matches: dict[str, str] = {}
    include: set[str] = set()
    for tag, value in ident.keys.items():
        attr = qido.ATTRS.get(tag)
        if attr is not None and qido.LEVEL_ORDER[attr.level] <= qido.LEVEL_ORDER[level]:
            if value not in ("", "*") and tag not in ident.sequences:
                matches[tag] = _normalize_match(attr, value)
        elif attr is None:
            # Not indexed: returned from the stored metadata, never matched
            # (PS3.4 C.2.2.1: an SCP may ignore keys it does not support).
            include.add(tag)
    return qido.Query(
        level=level,
        matches=matches,
        limit=max_results,
        include=frozenset(include),
    )


def _normalize_match(attr: qido.Attr, value: str) -> str:
    if attr.kind == "pn":
        # DIMSE pads names with spaces and empty trailing components ('DOE^JOHN^^^').
        return value.strip().rstrip("^=")
    if attr.kind in ("date", "time"):
        return value.strip().replace(":", "")
    return value.strip()


def to_dataset(ident: Identifier, item: Mapping[str, Any]) -> Dataset:
    """The response identifier: requested keys only, empty when we hold no value."""
    out: dict[str, Any] = {}
    for tag in ident.keys:
        if tag in ident.sequences:
            out[tag] = item.get(tag) or {"vr": "SQ"}
        else:
            out[tag] = item.get(tag) or {"vr": _vr(tag)}
        if "BulkDataURI" in out[tag]:
            out[tag] = {"vr": out[tag]["vr"]}
    ds = Dataset.from_json(out)
    ds.QueryRetrieveLevel = ident.level
    if any(_non_ascii(v) for v in out.values()):
        ds.SpecificCharacterSet = "ISO_IR 192"
    return ds


def _non_ascii(element: Mapping[str, Any]) -> bool:
    return any(not str(v).isascii() for v in element.get("Value", ()))


def _vr(tag: str) -> str:
    try:
        return str(dictionary_VR(int(tag, 16))).split(" or ")[0]
    except KeyError:
        return "UN"


def _find_patients(
    session: Session, ident: Identifier, max_results: int | None, visible: Any = None
) -> Iterator[Dataset]:
    matches = {
        tag: _normalize_match(qido.ATTRS[tag], value)
        for tag, value in ident.keys.items()
        if tag in PATIENT_ATTRS and value not in ("", "*")
    }
    unsupported = sorted(
        t
        for t, v in ident.keys.items()
        if v and t in qido.ATTRS and t not in PATIENT_ATTRS and t not in ident.sequences
    )
    if unsupported:
        raise InvalidInput(
            "PATIENT-level queries match only patient attributes; got " + ", ".join(unsupported)
        )
    extra = {t for t in ident.keys if t not in qido.ATTRS and not _is_patient_count(t)}
    query = qido.Query(level="study", matches=matches, include=frozenset(extra), visible=visible)
    patients: dict[tuple[str, str], dict[str, Any]] = {}
    for study in qido.search(session, query).items:
        key = (_first(study, "00100020"), _first(study, "00100010"))
        entry = patients.get(key)
        if entry is None:
            if max_results is not None and len(patients) >= max_results:
                break
            entry = dict(study)
            entry[PATIENT_STUDIES] = {"vr": "IS", "Value": [0]}
            entry[PATIENT_SERIES] = {"vr": "IS", "Value": [0]}
            entry[PATIENT_INSTANCES] = {"vr": "IS", "Value": [0]}
            patients[key] = entry
        entry[PATIENT_STUDIES]["Value"][0] += 1
        entry[PATIENT_SERIES]["Value"][0] += int(_first(study, STUDY_SERIES) or 0)
        entry[PATIENT_INSTANCES]["Value"][0] += int(_first(study, STUDY_INSTANCES) or 0)
    for entry in patients.values():
        yield to_dataset(ident, entry)


def _is_patient_count(tag: str) -> bool:
    return tag in (PATIENT_STUDIES, PATIENT_SERIES, PATIENT_INSTANCES)


def _first(item: Mapping[str, Any], tag: str) -> str:
    values = item.get(tag, {}).get("Value") or [""]
    first = values[0]
    if isinstance(first, dict):
        return str(first.get("Alphabetic", ""))
    return str(first)


def retrieve_targets(session: Session, ident: Identifier, visible: Any = None) -> list[InstanceRef]:
    """The instances a C-MOVE or C-GET identifier names (its unique keys) that the
    caller may see (``visible``); a refused study yields nothing, like a missing one."""

    def uids(tag: str, what: str) -> list[str]:
        raw = ident.keys.get(tag, "")
        values = [v.strip() for v in raw.split("\\") if v.strip()]
        if not values:
            raise InvalidInput(f"a {ident.level}-level retrieve needs {what} values")
        return values

    if ident.level == "PATIENT":
        pids = uids("00100020", "PatientID (0010,0020)")
        studies: list[str] = []
        for pid in pids:
            q = qido.Query(level="study", matches={"00100020": pid}, visible=visible)
            studies += [_first(s, "0020000D") for s in qido.search(session, q).items]
        return lookup.instances(session, study_uids=studies, visible=visible) if studies else []
    if ident.level == "STUDY":
        return lookup.instances(
            session, study_uids=uids("0020000D", "StudyInstanceUID (0020,000D)"), visible=visible
        )
    if ident.level == "SERIES":
        return lookup.instances(
            session,
            series_uids=uids("0020000E", "SeriesInstanceUID (0020,000E)"),
            visible=visible,
        )
    return lookup.instances(
        session, sop_uids=uids("00080018", "SOPInstanceUID (0008,0018)"), visible=visible
    )
