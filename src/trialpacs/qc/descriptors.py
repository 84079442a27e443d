"""The metadata layer: which regions the identified headers name, and what that means.

:func:`read_evidence` runs on the identified instance before de-identification
cleans the descriptions; it keeps only normalised findings (SNOMED codes, the
attribute that named them, laterality), never the text. :func:`assess` then
compares them, with the geometry, to what the trial expects at that time point.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from pydicom.dataset import Dataset

from trialpacs.qc import anatomy
from trialpacs.qc.anatomy import Region
from trialpacs.qc.geometry import Geometry, fov_conflict

# How much each attribute is trusted: the coded ones most, a coil name least.
WEIGHTS: dict[str, float] = {
    "BodyPartExamined": 1.0,
    "AnatomicRegionSequence": 1.0,
    "SeriesDescription": 0.8,
    "ProtocolName": 0.8,
    "StudyDescription": 0.6,
    "RequestedProcedureDescription": 0.5,
    "ReceiveCoilName": 0.4,
}
TEXT_FIELDS = tuple(k for k in WEIGHTS if k != "AnatomicRegionSequence")
Status = Literal["consistent", "conflicting", "unknown"]


@dataclass(frozen=True, slots=True)
class Finding:
    source: str  # the attribute keyword
    region: Region
    laterality: str = ""


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the identified headers said about anatomy, normalised; no header text."""

    findings: tuple[Finding, ...] = ()
    laterality: str = ""
    family: str = ""  # sequence family read before descriptions were cleaned

    def to_json(self) -> dict[str, object]:
        return {
            "findings": [[f.source, f.region.code, f.laterality] for f in self.findings],
            "laterality": self.laterality,
        }


@dataclass(frozen=True, slots=True)
class MetadataVerdict:
    status: Status
    score: float  # 0 consistent … 1 conflicting; 0.5 unknown
    reasons: tuple[str, ...] = field(default_factory=tuple)
    detected: tuple[str, ...] = ()  # region meanings


def _requested(ds: Dataset) -> str:
    value = ds.get("RequestedProcedureDescription")
    if value:
        return str(value)
    for item in ds.get("RequestAttributesSequence", []) or []:
        if item.get("RequestedProcedureDescription"):
            return str(item.RequestedProcedureDescription)
    return ""


def read_evidence(ds: Dataset) -> Evidence:
    findings: list[Finding] = []
    for item in ds.get("AnatomicRegionSequence", []) or []:
        region = anatomy.by_code(str(item.get("CodeValue", "")))
        if region is not None:
            findings.append(Finding("AnatomicRegionSequence", region))
    for keyword in TEXT_FIELDS:
        value = _requested(ds) if keyword == "RequestedProcedureDescription" else ds.get(keyword)
        if not value:
            continue
        for mention in anatomy.find(str(value)):
            findings.append(Finding(keyword, mention.region, mention.laterality))
    lat = str(ds.get("Laterality", "") or ds.get("ImageLaterality", "") or "").upper()
    lats = {f.laterality for f in findings if f.laterality}
    if lat not in ("R", "L"):
        lat = lats.pop() if len(lats) == 1 else ""
    return Evidence(tuple(findings), lat)


def assess(
    evidence: Evidence,
    geometry: Geometry | None,
    expected: Sequence[str],
    *,
    modality: str = "",
    expected_modalities: Sequence[str] = (),
) -> MetadataVerdict:
    """Consistent, conflicting or unknown against any of the expected regions."""
    wanted = [anatomy.expected(e) for e in expected]
    if not wanted:
        return MetadataVerdict("unknown", 0.5, ("the trial declares no anatomy",))
    want_lat = {anatomy.expected_laterality(e) for e in expected} - {""}
    names = anatomy.names(wanted)
    agree = conflict = 0.0
    strong = False
    reasons: list[str] = []
    for f in evidence.findings:
        rel = max(
            (anatomy.relation(f.region, w) for w in wanted),
            key=("disjoint", "coarser", "within").index,
        )
        w = WEIGHTS[f.source]
        if rel == "within":
            agree += w
            strong = True
        elif rel == "coarser":
            agree += w * 0.3
        else:
            conflict += w
            reasons.append(f"{f.source} names {f.region} (expected {names})")
    if geometry is not None:
        fov = [fov_conflict(geometry, w) for w in wanted]
        if all(fov):
            conflict += 0.5
            reasons.append(fov[0])
    if modality and expected_modalities and modality not in expected_modalities:
        conflict += 1.0
        wanted_m = ", ".join(sorted(set(expected_modalities)))
        reasons.append(f"modality {modality} (expected {wanted_m})")
    if want_lat and evidence.laterality and evidence.laterality not in want_lat:
        conflict += 1.0
        reasons.append(f"laterality {evidence.laterality} (expected {'/'.join(sorted(want_lat))})")
    detected = tuple(sorted({f.region.meaning for f in evidence.findings}))
    if agree + conflict == 0:
        return MetadataVerdict("unknown", 0.5, ("no anatomy in the headers",), detected)
    score = conflict / (agree + conflict)
    if conflict == 0 and not strong:
        why = f"headers name only {', '.join(detected)}, which contains {names}"
        return MetadataVerdict("unknown", 0.4, (why,), detected)
    if conflict == 0:
        return MetadataVerdict("consistent", 0.0, (), detected)
    status: Status = "conflicting" if score >= 0.5 else "consistent"
    if status == "consistent":
        reasons = [f"mostly consistent, but {r}" for r in reasons]
    return MetadataVerdict(status, round(score, 3), tuple(reasons), detected)
