"""Resolve the combined Table E.1-1 codes (X/Z, X/D, Z/D, X/Z/D, X/Z/U*).

PS3.15 E.3.1: remove the attribute where the IOD allows it (Type 3), empty it
where it must be present (Type 2), put a dummy where it must have a value
(Type 1). Carrying the full PS3.3 module tables for every IOD would be heavy;
only the 49 attributes with combined codes matter, and for them the type is
the same across the classic image IODs and across the enhanced multi-frame
IODs, so two small maps are enough. Anything not listed is treated as Type 3
(removed), which never leaves identifying data behind.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

IodKind = Literal["image", "enhanced"]

# Attribute types in the classic composite image IODs (CT, MR, CR, US, SC, ...)
IMAGE_TYPES: dict[int, int] = {
    0x00400555: 2,  # Acquisition Context Sequence (Acquisition Context module)
    0x00700084: 2,  # Content Creator's Name (Presentation State Identification)
    0x00080023: 2,  # Content Date (General Image, 2C)
    0x00080033: 2,  # Content Time (General Image, 2C)
    0x00180010: 2,  # Contrast/Bolus Agent (Contrast/Bolus module)
    0x00189919: 2,  # Instruction Performed DateTime
    0x0040A032: 1,  # Observation DateTime (SR content item, 1C)
    0x00100020: 2,  # Patient ID (Patient module)
    0x300E0008: 2,  # Reviewer Name (Approval module, 2C)
    0x300A00B2: 2,  # Treatment Machine Name (RT Beams)
}

# Enhanced multi-frame IODs (Enhanced CT/MR/XA/PET ...) differ where the
# Enhanced General Equipment and Multi-frame modules make things Type 1.
ENHANCED_TYPES: dict[int, int] = {
    **IMAGE_TYPES,
    0x00080023: 1,  # Content Date (Multi-frame Functional Groups)
    0x00080033: 1,  # Content Time
    0x0008002A: 1,  # Acquisition DateTime (Enhanced image modules, 1C)
    0x00181000: 1,  # Device Serial Number (Enhanced General Equipment)
    0x00082112: 1,  # Source Image Sequence (Derivation Image functional group, 1C)
}

_TYPES: dict[str, Mapping[int, int]] = {"image": IMAGE_TYPES, "enhanced": ENHANCED_TYPES}

SHARED_FUNCTIONAL_GROUPS = 0x52009229


def iod_kind(tags: object) -> IodKind:
    """Enhanced IODs are recognised by their Shared Functional Groups Sequence."""
    try:
        return "enhanced" if SHARED_FUNCTIONAL_GROUPS in tags else "image"  # type: ignore[operator]
    except TypeError:
        return "image"


def attribute_type(tag: int, kind: IodKind) -> int:
    return _TYPES[kind].get(tag, 3)


def resolve_combined(code: str, tag: int, kind: IodKind) -> str:
    """Turn a combined code into D, Z, U or X for this IOD kind."""
    if "/" not in code:
        return code
    choices = code.rstrip("*").split("/")
    t = attribute_type(tag, kind)
    if t == 1:
        for pick in ("U", "D", "Z"):
            if pick in choices:
                return pick
    if t in (1, 2):
        for pick in ("Z", "U", "D"):
            if pick in choices:
                return pick
    if "X" in choices:
        return "X"
    return "Z" if "Z" in choices else choices[-1]
