"""A cohort definition: which de-identified series a research dataset holds.

A value object validated on construction, so a bad filter is refused when it
is written (CLI, API, saved file), not when an export is half done. Its
canonical JSON (sorted keys, sorted de-duplicated lists) is what is saved and
hashed: two definitions that select by the same rules have the same digest.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from trialpacs.errors import InvalidInput

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Published series either passed the pipeline's QC hook, or were published
# directly (an administrator's upload of already de-identified data).
QC_STATUSES = ("passed", "not_checked")
_KEYS = {
    "trial", "sites", "subjects", "timepoints", "modalities", "body_parts",
    "series_description", "qc_status", "days_from_baseline_min", "days_from_baseline_max",
}  # fmt: skip


def _ids(values: Iterable[str], what: str) -> tuple[str, ...]:
    out = set()
    for v in values:
        text = str(v).strip()
        if not _ID_RE.match(text):
            raise InvalidInput(
                f"{what} {v!r}: 1-64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        out.add(text)
    return tuple(sorted(out))


def _codes(values: Iterable[str], what: str, limit: int = 16) -> tuple[str, ...]:
    out = set()
    for v in values:
        text = str(v).strip().upper()
        if not text or len(text) > limit or not re.fullmatch(r"[A-Z0-9 _]+", text):
            raise InvalidInput(f"{what} {v!r}: a DICOM code string (A-Z, 0-9, space, _)")
        out.add(text)
    return tuple(sorted(out))


@dataclass(frozen=True)
class CohortDefinition:
    """Filters combine with AND; the values of one filter with OR; empty means any."""

    trial: str
    sites: tuple[str, ...] = ()
    subjects: tuple[str, ...] = ()
    timepoints: tuple[str, ...] = ()
    modalities: tuple[str, ...] = ()
    body_parts: tuple[str, ...] = ()
    # Shell-style pattern on SeriesDescription, case-insensitive: "*T1*", "ADC*".
    series_description: str | None = None
    qc_status: tuple[str, ...] = ()
    # Days from the subject's baseline study (inclusive bounds).
    days_from_baseline_min: int | None = None
    days_from_baseline_max: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.trial, str) or not _ID_RE.match(self.trial):
            raise InvalidInput(f"trial {self.trial!r} is not a trial ID")
        set_ = object.__setattr__
        set_(self, "sites", _ids(_seq(self.sites, "sites"), "site"))
        set_(self, "subjects", _ids(_seq(self.subjects, "subjects"), "subject"))
        set_(self, "timepoints", _ids(_seq(self.timepoints, "timepoints"), "time point"))
        set_(self, "modalities", _codes(_seq(self.modalities, "modalities"), "modality"))
        set_(self, "body_parts", _codes(_seq(self.body_parts, "body_parts"), "body part"))
        statuses = tuple(sorted({str(s).strip().lower() for s in _seq(self.qc_status, "qc")}))
        for s in statuses:
            if s not in QC_STATUSES:
                raise InvalidInput(f"QC status {s!r}: one of {', '.join(QC_STATUSES)}")
        set_(self, "qc_status", statuses)
        pattern = self.series_description
        if pattern is not None:
            pattern = str(pattern).strip()
            if not pattern or len(pattern) > 128:
                raise InvalidInput("series_description pattern must be 1-128 characters")
            set_(self, "series_description", pattern)
        lo, hi = self.days_from_baseline_min, self.days_from_baseline_max
        for name, value in (("days_from_baseline_min", lo), ("days_from_baseline_max", hi)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise InvalidInput(f"{name} must be a whole number of days, not {value!r}")
        if lo is not None and hi is not None and lo > hi:
            raise InvalidInput(f"days_from_baseline_min ({lo}) is after the max ({hi})")

    # --- matching the parts SQL does not do ------------------------------------

    def matches_description(self, description: str) -> bool:
        if self.series_description is None:
            return True
        return fnmatch.fnmatchcase(description.upper(), self.series_description.upper())

    def matches_days(self, days: int | None) -> bool:
        if self.days_from_baseline_min is None and self.days_from_baseline_max is None:
            return True
        if days is None:  # no usable study date: outside any date window
            return False
        lo, hi = self.days_from_baseline_min, self.days_from_baseline_max
        return (lo is None or days >= lo) and (hi is None or days <= hi)

    # --- canonical form -----------------------------------------------------------

    def to_mapping(self) -> dict[str, Any]:
        return {
            "trial": self.trial,
            "sites": list(self.sites),
            "subjects": list(self.subjects),
            "timepoints": list(self.timepoints),
            "modalities": list(self.modalities),
            "body_parts": list(self.body_parts),
            "series_description": self.series_description,
            "qc_status": list(self.qc_status),
            "days_from_baseline_min": self.days_from_baseline_min,
            "days_from_baseline_max": self.days_from_baseline_max,
        }

    def canonical_json(self) -> str:
        return json.dumps(self.to_mapping(), sort_keys=True, separators=(",", ":"))

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> CohortDefinition:
        if not isinstance(data, Mapping):
            raise InvalidInput("a cohort definition is a JSON/YAML mapping")
        extra = set(data) - _KEYS
        if extra:
            raise InvalidInput(
                f"unknown cohort keys {sorted(extra)}; known: {', '.join(sorted(_KEYS))}"
            )
        if "trial" not in data:
            raise InvalidInput("a cohort names its trial ('trial')")
        kw: dict[str, Any] = {k: v for k, v in data.items() if v is not None}
        for key in ("sites", "subjects", "timepoints", "modalities", "body_parts", "qc_status"):
            if key in kw:
                kw[key] = tuple(_seq(kw[key], key))
        return cls(**kw)


def _seq(value: object, what: str) -> list[str]:
    if isinstance(value, str):
        return [v for v in (p.strip() for p in value.split(",")) if v]
    if isinstance(value, (list, tuple, set, frozenset)):
        return [str(v) for v in value]
    raise InvalidInput(f"{what} must be a list of values, not {type(value).__name__}")


_NAME_RE = _ID_RE
RESERVED_NAMES = frozenset({"history"})  # `trialpacs export history` is a command


def check_cohort_name(name: str) -> str:
    text = str(name).strip()
    if not _NAME_RE.match(text) or text.lower() in RESERVED_NAMES:
        raise InvalidInput(
            f"cohort name {name!r}: 1-64 letters, digits, '.', '_' or '-' (not 'history')"
        )
    return text


__all__ = ["QC_STATUSES", "CohortDefinition", "check_cohort_name"]
