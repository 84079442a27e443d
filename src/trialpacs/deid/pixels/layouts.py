"""Known fixed text regions by device and image size (like CTP's pixel anonymizer).

Some devices always burn the patient banner into the same rectangle. Masking
that rectangle does not depend on OCR reading faint or stylised text, so the
rules are applied *in addition to* OCR, even when the scan decision skipped
OCR. A trial can add its own rules file; its rules are appended.

Rule file format (YAML)::

    rules:
      - id: philips-iu22-480
        source: where the coordinates come from
        match:                      # every key given must match
          modality: US              # equals (a list means any of)
          manufacturer: Philips     # contains, case-insensitive (list: any)
          model: iU22               # ManufacturerModelName, contains
          rows: 480                 # equals (list: any)
          columns: 640
          image_type: SECONDARY     # one of the ImageType values, contains
          series_description: Dose  # contains
        regions:                    # x, y, width, height in pixels
          - [0, 0, 640, 47]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydicom.dataset import Dataset

from .mask import Box

__all__ = ["LayoutRule", "LayoutRules", "default_layout_rules", "load_layout_rules"]

_MATCH_KEYS = {
    "modality",
    "manufacturer",
    "model",
    "rows",
    "columns",
    "image_type",
    "series_description",
    "sop_class_uid",
}


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


@dataclass(frozen=True)
class LayoutRule:
    id: str
    match: dict[str, list[Any]]
    regions: tuple[Box, ...]
    source: str = ""

    def matches(self, ds: Dataset) -> bool:
        return self.matches_facts(_Facts.of(ds))

    def matches_facts(self, facts: _Facts) -> bool:
        for key, wanted in self.match.items():
            if not wanted:
                continue
            if key == "modality":
                if facts.modality not in {str(w).upper() for w in wanted}:
                    return False
            elif key in ("manufacturer", "model", "series_description"):
                have = getattr(facts, key)
                if not any(str(w).upper() in have for w in wanted):
                    return False
            elif key in ("rows", "columns"):
                have_n = getattr(facts, key)
                if have_n is None or have_n not in {int(w) for w in wanted}:
                    return False
            elif key == "image_type":
                if not any(str(w).upper() in v for w in wanted for v in facts.image_type):
                    return False
            elif key == "sop_class_uid" and facts.sop_class_uid not in {str(w) for w in wanted}:
                return False
        return True


@dataclass(frozen=True)
class _Facts:
    """The attributes rules match on, read once per instance rather than once per rule."""

    modality: str
    manufacturer: str
    model: str
    series_description: str
    rows: int | None
    columns: int | None
    image_type: tuple[str, ...]
    sop_class_uid: str

    @classmethod
    def of(cls, ds: Dataset) -> _Facts:
        rows, columns = ds.get("Rows"), ds.get("Columns")
        return cls(
            modality=str(ds.get("Modality", "")).upper(),
            manufacturer=str(ds.get("Manufacturer", "")).upper(),
            model=str(ds.get("ManufacturerModelName", "")).upper(),
            series_description=str(ds.get("SeriesDescription", "")).upper(),
            rows=None if rows is None else int(rows),
            columns=None if columns is None else int(columns),
            image_type=tuple(str(v).upper() for v in _as_list(ds.get("ImageType"))),
            sop_class_uid=str(ds.get("SOPClassUID", "")),
        )


@dataclass
class LayoutRules:
    rules: list[LayoutRule] = field(default_factory=list)

    def matching(self, ds: Dataset) -> list[LayoutRule]:
        if not self.rules:
            return []
        facts = _Facts.of(ds)
        return [r for r in self.rules if r.matches_facts(facts)]

    def extended(self, more: Iterable[LayoutRule]) -> LayoutRules:
        return LayoutRules([*self.rules, *more])


def _parse_rule(raw: dict[str, Any], origin: str) -> LayoutRule:
    if not isinstance(raw, dict) or "id" not in raw or "regions" not in raw:
        raise ValueError(f"{origin}: every layout rule needs an id and regions")
    match_raw = raw.get("match") or {}
    unknown = set(match_raw) - _MATCH_KEYS
    if unknown:
        raise ValueError(f"{origin}: rule {raw['id']}: unknown match keys {sorted(unknown)}")
    if not match_raw:
        raise ValueError(f"{origin}: rule {raw['id']} matches every image; give a match")
    regions = []
    for region in raw["regions"]:
        if not isinstance(region, Sequence) or len(region) != 4:
            raise ValueError(f"{origin}: rule {raw['id']}: region must be [x, y, width, height]")
        x, y, w, h = (int(v) for v in region)
        if w <= 0 or h <= 0 or x < 0 or y < 0:
            raise ValueError(f"{origin}: rule {raw['id']}: bad region {region}")
        regions.append(Box(x, y, w, h))
    return LayoutRule(
        id=str(raw["id"]),
        match={k: _as_list(v) for k, v in match_raw.items()},
        regions=tuple(regions),
        source=str(raw.get("source", "")),
    )


def load_layout_rules(source: str | Path | dict[str, Any]) -> LayoutRules:
    """Parse a rules file (path) or an already-loaded mapping; errors name the rule."""
    if isinstance(source, dict):
        data, origin = source, "<mapping>"
    else:
        origin = str(source)
        data = yaml.safe_load(Path(source).read_text(encoding="utf-8")) or {}
    rules = [_parse_rule(r, origin) for r in data.get("rules") or []]
    ids = [r.id for r in rules]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:
        raise ValueError(f"{origin}: duplicate layout rule ids {sorted(dupes)}")
    return LayoutRules(rules)


def default_layout_rules() -> LayoutRules:
    """The rules shipped with trialpacs (``pixel_layouts.yaml``)."""
    text = (
        resources.files("trialpacs.deid.pixels")
        .joinpath("pixel_layouts.yaml")
        .read_text(encoding="utf-8")
    )
    return load_layout_rules(yaml.safe_load(text) or {})
