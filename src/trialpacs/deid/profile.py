"""Profiles: which options apply, per-tag overrides, and the trial's settings.

A profile is resolved once into per-tag action maps (one per IOD kind), so the
engine does one dict lookup per element. Profiles are YAML; a trial's file
says ``extends: trial`` and adds what differs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydicom.datadict import tag_for_keyword

from trialpacs.deid.iod import IodKind, resolve_combined
from trialpacs.deid.table import TABLE_OPTIONS, Option, Row, load_table
from trialpacs.errors import InvalidInput

ACTIONS = frozenset({"D", "Z", "X", "K", "C", "U"})
PIXEL_POLICIES = ("mask-all-text", "mask-phi")  # trialpacs.deid.pixels.POLICIES
BUILTIN_PROFILES = ("basic", "trial")

# When two selected options disagree on one attribute, the cleaner outcome wins.
_OPTION_RANK = {"C": 0, "K": 1}


@dataclass(frozen=True, slots=True)
class SafePrivate:
    """A private attribute known to carry no identity (PS3.15 E.3.10)."""

    creator: str
    group: int
    element: int  # low byte of the element, i.e. (gggg,xxEE)
    name: str = ""


@dataclass(frozen=True)
class Profile:
    """What to do with each attribute, plus the trial-level knobs."""

    name: str
    options: frozenset[Option] = frozenset()
    overrides: dict[int, str] = field(default_factory=dict)
    unknown_standard: str = "K"
    unknown_nonstandard: str = "X"
    subject_id_format: str = "{site}-{n:04d}"
    date_shift_days: tuple[int, int] = (-1095, -30)
    cap_age: bool = True
    safe_private: tuple[SafePrivate, ...] = ()
    ner: str = "auto"  # auto: use spaCy when installed; on: require it; off
    replacement: str = "[{label}]"
    # Clean Pixel Data: what the OCR cleaner masks (docs/pixels.md, "Policies").
    pixel_policy: str = "mask-all-text"

    def __post_init__(self) -> None:
        both = {Option.RETAIN_LONG_FULL_DATES, Option.RETAIN_LONG_MODIFIED_DATES}
        if both <= self.options:
            raise InvalidInput(
                f"profile {self.name!r}: retain-long-full-dates and retain-long-modified-dates "
                "exclude each other"
            )
        for tag, action in self.overrides.items():
            if action not in ACTIONS:
                raise InvalidInput(
                    f"profile {self.name!r}: unknown action {action!r} for {tag:08X}"
                )
        lo, hi = self.date_shift_days
        if lo > hi:
            raise InvalidInput(f"profile {self.name!r}: date_shift_days must be [min, max]")
        if self.ner not in ("auto", "on", "off"):
            raise InvalidInput(f"profile {self.name!r}: ner must be auto, on or off")
        if self.pixel_policy not in PIXEL_POLICIES:
            raise InvalidInput(
                f"profile {self.name!r}: pixel_policy must be one of {', '.join(PIXEL_POLICIES)}, "
                f"not {self.pixel_policy!r}"
            )
        try:
            self.subject_id_format.format(site="S", trial="T", n=1, hash="0" * 16)
        except (KeyError, ValueError, IndexError) as exc:
            raise InvalidInput(
                f"profile {self.name!r}: subject_id_format {self.subject_id_format!r} "
                f"is not usable ({exc}); fields are site, trial, n, hash"
            ) from exc

    def has(self, option: Option) -> bool:
        return option in self.options

    def row_action(self, row: Row, kind: IodKind) -> str:
        """The action for one table row under this profile (before overrides)."""
        picked = [row.options[o] for o in TABLE_OPTIONS if o in self.options and o in row.options]
        action = min(picked, key=lambda a: _OPTION_RANK.get(a, 0)) if picked else row.basic
        tag = row.tag if row.tag is not None else row.value
        return resolve_combined(action, tag, kind)

    def action_map(self, kind: IodKind) -> dict[int, str]:
        return self._maps[kind]

    @cached_property
    def _maps(self) -> dict[str, dict[int, str]]:
        maps: dict[str, dict[int, str]] = {}
        for kind in ("image", "enhanced"):
            m: dict[int, str] = {}
            for row in load_table():
                if row.tag is not None:
                    m[row.tag] = self.row_action(row, kind)  # type: ignore[arg-type,unused-ignore]
            m.update(self.overrides)
            maps[kind] = m
        return maps

    @cached_property
    def repeating_actions(self) -> dict[int, str]:
        """Actions for (50xx,xxxx) curve data and (60xx,eeee) overlays, by masked tag."""
        out: dict[int, str] = {}
        for row in load_table():
            if row.tag is None and row.key != "private":
                out[row.value] = self.row_action(row, "image")
        return out

    @cached_property
    def safe_private_index(self) -> dict[tuple[str, int, int], SafePrivate]:
        return {(s.creator.strip().upper(), s.group, s.element): s for s in self.safe_private}


# ---------------------------------------------------------------- loading


def parse_tag(value: object) -> int:
    """Accept 0x00081140, '00081140', '(0008,1140)', '0008,1140' or a keyword."""
    if isinstance(value, int):
        return value
    text = str(value).strip()
    m = re.fullmatch(r"\(?([0-9A-Fa-f]{4}),?([0-9A-Fa-f]{4})\)?", text)
    if m:
        return int(m.group(1) + m.group(2), 16)
    tag = tag_for_keyword(text)
    if tag is None:
        raise InvalidInput(f"unknown attribute {text!r} in profile (use a keyword or gggg,eeee)")
    return int(tag)


def _options(values: object, where: str) -> set[Option]:
    out: set[Option] = set()
    for v in values or []:  # type: ignore[attr-defined]
        try:
            out.add(Option(str(v).strip().lower().replace("_", "-").replace(" ", "-")))
        except ValueError as exc:
            known = ", ".join(o.value for o in Option)
            raise InvalidInput(f"{where}: unknown option {v!r} (known: {known})") from exc
    return out


def _int(v: object) -> int:
    return int(v, 0) if isinstance(v, str) else int(v)  # type: ignore[call-overload]


def profile_from_mapping(data: dict[str, Any], where: str, base: Profile | None = None) -> Profile:
    """Build a profile from parsed YAML, on top of ``base`` when it extends one."""
    known = {
        "name", "extends", "options", "drop_options", "overrides", "keep", "unknown",
        "subject_id_format", "date_shift_days", "cap_age", "safe_private", "ner",
        "replacement", "description", "pixel_policy",
    }  # fmt: skip
    extra = set(data) - known
    if extra:
        raise InvalidInput(f"{where}: unknown profile keys {sorted(extra)}")
    p = base or Profile(name="basic")
    options = set(p.options) | _options(data.get("options"), where)
    options -= _options(data.get("drop_options"), where)
    overrides = dict(p.overrides)
    for key, action in (data.get("overrides") or {}).items():
        overrides[parse_tag(key)] = str(action).strip().upper()
    for key in data.get("keep") or []:
        overrides[parse_tag(key)] = "K"
    unknown = data.get("unknown") or {}
    safe = list(p.safe_private)
    for item in data.get("safe_private") or []:
        safe.append(
            SafePrivate(
                creator=str(item["creator"]),
                group=_int(item["group"]),
                element=_int(item["element"]) & 0xFF,
                name=str(item.get("name", "")),
            )
        )
    shift = data.get("date_shift_days", p.date_shift_days)
    try:
        return replace(
            p,
            name=str(data.get("name", p.name)),
            options=frozenset(options),
            overrides=overrides,
            unknown_standard=_unknown(unknown.get("standard", p.unknown_standard)),
            unknown_nonstandard=_unknown(unknown.get("nonstandard", p.unknown_nonstandard)),
            subject_id_format=str(data.get("subject_id_format", p.subject_id_format)),
            date_shift_days=(int(shift[0]), int(shift[1])),
            cap_age=bool(data.get("cap_age", p.cap_age)),
            safe_private=tuple(safe),
            ner=str(data.get("ner", p.ner)),
            replacement=str(data.get("replacement", p.replacement)),
            pixel_policy=str(data.get("pixel_policy", p.pixel_policy)).strip().lower(),
        )
    except (TypeError, IndexError, ValueError) as exc:
        raise InvalidInput(f"{where}: {exc}") from exc


def _unknown(v: object) -> str:
    text = str(v).strip().lower()
    mapping = {"keep": "K", "k": "K", "remove": "X", "x": "X"}
    if text not in mapping:
        raise InvalidInput(f"unknown-attribute default must be keep or remove, not {v!r}")
    return mapping[text]


def load_profile(name_or_path: str | Path | None = None) -> Profile:
    """A built-in profile by name (``basic``, ``trial``) or a YAML file."""
    return _load(str(name_or_path or "trial"), depth=0)


def _load(ref: str, depth: int) -> Profile:
    if depth > 8:
        raise InvalidInput(f"profile {ref!r}: 'extends' chain is too long (a loop?)")
    if ref in BUILTIN_PROFILES:
        text = resources.files("trialpacs.deid").joinpath(f"data/profiles/{ref}.yaml").read_text()
        where = f"built-in profile {ref!r}"
    else:
        path = Path(ref)
        if not path.is_file():
            raise InvalidInput(
                f"profile {ref!r} is neither a built-in ({', '.join(BUILTIN_PROFILES)}) nor a file"
            )
        text = path.read_text(encoding="utf-8")
        where = str(path)
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{where}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidInput(f"{where}: a profile is a YAML mapping")
    base = _load(str(data["extends"]), depth + 1) if data.get("extends") else None
    if base is None and ref != "basic":
        base = Profile(name="basic")
    return profile_from_mapping(data, where, base)
