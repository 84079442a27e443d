"""PS3.15 Table E.1-1 as data, and the option vocabulary (CID 7050).

The table is loaded once from the package's generated JSON; profiles turn it
into a per-tag action map, so nothing here is consulted per element.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from importlib import resources


class Option(StrEnum):
    """PS3.15 E.3 profile options, with their CID 7050 code values."""

    RETAIN_SAFE_PRIVATE = "retain-safe-private"
    RETAIN_UIDS = "retain-uids"
    RETAIN_DEVICE_IDENTITY = "retain-device-identity"
    RETAIN_INSTITUTION_IDENTITY = "retain-institution-identity"
    RETAIN_PATIENT_CHARACTERISTICS = "retain-patient-characteristics"
    RETAIN_LONG_FULL_DATES = "retain-long-full-dates"
    RETAIN_LONG_MODIFIED_DATES = "retain-long-modified-dates"
    CLEAN_DESCRIPTORS = "clean-descriptors"
    CLEAN_STRUCTURED_CONTENT = "clean-structured-content"
    CLEAN_GRAPHICS = "clean-graphics"
    CLEAN_PIXEL_DATA = "clean-pixel-data"

    @property
    def code(self) -> tuple[str, str]:
        """(code value, code meaning) in CID 7050, scheme DCM."""
        return OPTION_CODES[self]


BASIC_CODE = ("113100", "Basic Application Confidentiality Profile")

OPTION_CODES: dict[Option, tuple[str, str]] = {
    Option.CLEAN_PIXEL_DATA: ("113101", "Clean Pixel Data Option"),
    Option.CLEAN_GRAPHICS: ("113103", "Clean Graphics Option"),
    Option.CLEAN_STRUCTURED_CONTENT: ("113104", "Clean Structured Content Option"),
    Option.CLEAN_DESCRIPTORS: ("113105", "Clean Descriptors Option"),
    Option.RETAIN_LONG_FULL_DATES: (
        "113106",
        "Retain Longitudinal Temporal Information Full Dates Option",
    ),
    Option.RETAIN_LONG_MODIFIED_DATES: (
        "113107",
        "Retain Longitudinal Temporal Information Modified Dates Option",
    ),
    Option.RETAIN_PATIENT_CHARACTERISTICS: ("113108", "Retain Patient Characteristics Option"),
    Option.RETAIN_DEVICE_IDENTITY: ("113109", "Retain Device Identity Option"),
    Option.RETAIN_UIDS: ("113110", "Retain UIDs Option"),
    Option.RETAIN_SAFE_PRIVATE: ("113111", "Retain Safe Private Option"),
    Option.RETAIN_INSTITUTION_IDENTITY: ("113112", "Retain Institution Identity Option"),
}

# Options whose table column exists; Clean Pixel Data acts on pixels only.
TABLE_OPTIONS: tuple[Option, ...] = tuple(o for o in Option if o is not Option.CLEAN_PIXEL_DATA)

ACTION_CODES = frozenset({"D", "Z", "X", "K", "C", "U", "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"})


@dataclass(frozen=True, slots=True)
class Row:
    """One attribute of Table E.1-1.

    ``tag`` is the exact tag, or None for repeating groups and private
    attributes, which match through ``mask``/``value`` instead.
    """

    key: str
    name: str
    std: bool
    basic: str
    options: dict[Option, str] = field(default_factory=dict)
    tag: int | None = None
    mask: int = 0xFFFFFFFF
    value: int = 0

    def matches(self, tag: int) -> bool:
        return (tag & self.mask) == self.value

    @property
    def label(self) -> str:
        k = self.key.upper()
        return f"({k[:4]},{k[4:]})" if len(k) == 8 else k


def _parse_key(key: str) -> tuple[int | None, int, int]:
    if key == "private":
        return None, 0x00010000, 0x00010000
    if "x" not in key:
        return int(key, 16), 0xFFFFFFFF, int(key, 16)
    mask = int("".join("0" if c == "x" else "F" for c in key), 16)
    value = int(key.replace("x", "0"), 16)
    return None, mask, value


@cache
def load_table() -> tuple[Row, ...]:
    """All 621 rows, in tag order."""
    text = resources.files("trialpacs.deid").joinpath("data/ps3.15-e1-1.json").read_text("utf-8")
    rows = []
    for raw in json.loads(text)["rows"]:
        tag, mask, value = _parse_key(raw["key"] if "key" in raw else raw["tag"])
        if raw["basic"] not in ACTION_CODES:
            raise ValueError(f"unknown action {raw['basic']!r} for {raw['tag']}")
        rows.append(
            Row(
                key=raw["tag"],
                name=raw["name"],
                std=bool(raw["std"]),
                basic=raw["basic"],
                options={Option(k): v for k, v in raw["options"].items()},
                tag=tag,
                mask=mask,
                value=value,
            )
        )
    return tuple(rows)


@cache
def table_about() -> dict[str, object]:
    text = resources.files("trialpacs.deid").joinpath("data/ps3.15-e1-1.json").read_text("utf-8")
    about: dict[str, object] = json.loads(text)["about"]
    return about
