"""Which detected text regions get masked.

Two policies, chosen per profile:

* ``mask-all-text`` (trial default): mask everything except text that is
  positively recognised, with confidence, as a safe annotation (orientation
  letters, scale labels, acquisition parameters). Unreadable text is masked.
* ``mask-phi``: mask text that matches the instance's own identifying header
  values, a PHI pattern, or an optional NER callback; keep the rest.
  Unreadable text is masked here too: what cannot be read cannot be cleared.

Matching is tolerant because OCR misreads (``0``/``O``, ``1``/``I``, dropped
``^``): header terms match with a small edit distance, dates in any common
layout.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .ocr import TextRegion

__all__ = [
    "Decision",
    "MaskAllText",
    "MaskPhi",
    "PhiMatcher",
    "TextPolicy",
    "is_safe_annotation",
    "make_policy",
]

POLICIES = ("mask-all-text", "mask-phi")


@dataclass(frozen=True)
class Decision:
    mask: bool
    reason: str


class TextPolicy(Protocol):
    name: str

    def wants_text(self, region: TextRegion) -> bool:
        """Whether reading this region could change the decision (recognition costs time)."""
        ...

    def decide(self, region: TextRegion, phi: PhiMatcher) -> Decision: ...


# --- safe annotations -------------------------------------------------------

_UNITS = (
    r"(?:MM|CM|M|KM|S|SEC|MS|HZ|KHZ|MHZ|DB|%|KV|KVP|MA|MAS|FPS|BPM|CM/S|MM/S|M/S|DEG|°|X|"
    r"MM2/S|G|T|MT/M|PX)"
)
_PARAMS = (
    r"(?:TR|TE|TI|FA|ST|SL|THK|FOV|KV|KVP|MA|MAS|W|L|WW|WL|WC|C|GAIN|G|DR|FR|MI|TIS|TIB|TIC|"
    r"PRF|WF|ZOOM|Z|DEPTH|D|FREQ|F|PWR|POWER|P|NEX|NSA|ET|EC|BW|MATRIX|SP|EXP|AVG|IMG|IM|SE|"
    r"SER|FRAME|FR#|B|DYN|CINE|ECHO|SLICE|PHASE|SCALE|R|HR)"
)
_NUMBER = r"[-+]?\d{1,4}(?:[.,]\d{1,3})?"
_ORIENTATION = (
    r"(?:[RLAPSIHF]{1,3}|AP|PA|LAT|LATERAL|RAO|LAO|RPO|LPO|OBL|AXIAL|AX|SAG|COR|CORONAL|"
    r"SAGITTAL|TRANSVERSE|SUPINE|PRONE|ERECT|UPRIGHT|PORTABLE|DECUBITUS)"
)
_SAFE_TOKEN = (
    rf"(?:{_PARAMS}\s*[:=]?\s*{_NUMBER}\s*{_UNITS}?"
    rf"|{_NUMBER}\s*{_UNITS}?"
    rf"|{_NUMBER}\s*/\s*{_NUMBER}"
    rf"|X\s*{_NUMBER}"
    rf"|{_ORIENTATION}"
    r"|2D|3D|M-MODE|B-MODE|CFM|PW|CW|PD|THI)"
)
_SAFE_LINE = re.compile(rf"^{_SAFE_TOKEN}(?:\s*[,;|]?\s+{_SAFE_TOKEN})*$", re.IGNORECASE)
_YEAR = re.compile(r"(?:19|20)\d{2}")
_PARAM_NAME = re.compile(rf"{_PARAMS}[:=]?", re.IGNORECASE)


def _has_bare_year(t: str) -> bool:
    """Whether a token is a year-shaped number not following a parameter name."""
    tokens = [x for x in re.split(r"[\s,;|]+", t) if x]
    for i, tok in enumerate(tokens):
        if _YEAR.fullmatch(tok) and not (i > 0 and _PARAM_NAME.fullmatch(tokens[i - 1])):
            return True
    return False


def is_safe_annotation(
    text: str, extra: Sequence[re.Pattern[str]] = (), max_length: int = 32
) -> bool:
    """Whether ``text`` consists only of tokens that cannot identify a person."""
    t = " ".join(text.strip().split())
    if not t or len(t) > max_length:
        return False
    if _has_bare_year(t):
        # "15, 1962": a date whose month the reader missed. A year-shaped
        # number is only safe after a parameter name ("W 2000").
        return any(p.fullmatch(t) for p in extra)
    if _SAFE_LINE.match(t):
        return True
    return any(p.fullmatch(t) for p in extra)


# --- PHI matching ------------------------------------------------------------

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")

_PHI_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("date", re.compile(r"\b\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}\b")),
    (
        "date",
        re.compile(r"\b\d{1,2}[-\s]?(?:" + "|".join(_MONTHS) + r")[A-Z]*[-\s,]?\s*\d{2,4}\b", re.I),
    ),
    (
        "date",
        re.compile(r"\b(?:" + "|".join(_MONTHS) + r")[A-Z]*\.?\s+\d{1,2},?\s+\d{2,4}\b", re.I),
    ),
    ("date", re.compile(r"\b(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\b")),
    ("identifier", re.compile(r"\b[A-Z]{0,3}\d{6,}\b", re.I)),
    ("identifier", re.compile(r"\b\d{3}-\d{2}-\d{4}\b")),
    ("phone", re.compile(r"\(?\b\d{3}\)?[-.\s]\d{3}[-.\s]\d{4}\b")),
    ("email", re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.]+\b")),
    (
        "label",
        re.compile(
            r"\b(?:NAME|PATIENT|PT|DOB|BIRTH|MRN|ID|ACC|ACCESSION|SSN|HOSP|"
            r"HOSPITAL|CLINIC|MEDICAL|CENTER|CENTRE|INSTITUTION|INFIRMARY|PHYSICIAN|"
            r"DR|REF|ADDRESS)\b[.:#]?",
            re.I,
        ),
    ),
    (
        "address",
        re.compile(
            r"\b\d+\s+\w+(?:\s+\w+)?\s+(?:ST|STREET|AVE|AVENUE|RD|ROAD|BLVD|LN|"
            r"LANE|DR|DRIVE|WAY|CT|COURT|PL|PLACE|SQ|SQUARE)\b\.?",
            re.I,
        ),
    ),
    ("name", re.compile(r"\b[A-Z][A-Z'-]+\^[A-Z][A-Z'-]*", re.I)),
)


def _norm(text: str) -> str:
    return re.sub(r"[^0-9A-Z]+", "", text.upper())


def _fold(text: str) -> str:
    """Map characters OCR confuses onto one another."""
    return text.translate(str.maketrans("0OQDIL1|5S8B2Z6G", "OOOOIIIISSBBZZGG"))


def _approx_contains(pattern: str, text: str, max_dist: int) -> bool:
    """Whether ``pattern`` occurs in ``text`` with at most ``max_dist`` edits (Sellers)."""
    if max_dist == 0 or len(pattern) <= max_dist:
        return pattern in text
    prev = [0] * (len(text) + 1)
    for i, pc in enumerate(pattern, 1):
        cur = [i] + [0] * len(text)
        for j, tc in enumerate(text, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (pc != tc))
        prev = cur
    return min(prev) <= max_dist


def _date_variants(digits: str) -> set[str]:
    """Compact layouts of a DICOM DA value (YYYYMMDD) as they appear burned in."""
    if len(digits) != 8:
        return set()
    y, m, d = digits[:4], digits[4:6], digits[6:]
    out = {y + m + d, d + m + y, m + d + y, d + m + y[2:], m + d + y[2:], y[2:] + m + d}
    if 1 <= int(m) <= 12:
        mon = _MONTHS[int(m) - 1]
        out |= {d + mon + y, mon + d + y, d + mon + y[2:], str(int(d)) + mon + y}
    return out


@dataclass
class PhiMatcher:
    """The header values of one instance, prepared for matching against OCR text."""

    terms: list[str] = field(default_factory=list)
    date_variants: set[str] = field(default_factory=set)
    ner: Callable[[str], bool] | None = None

    @classmethod
    def from_terms(
        cls, phi_terms: Iterable[str], ner: Callable[[str], bool] | None = None
    ) -> PhiMatcher:
        terms: set[str] = set()
        dates: set[str] = set()
        for raw in phi_terms:
            if raw is None:
                continue
            value = str(raw)
            digits = re.sub(r"\D", "", value)
            if re.fullmatch(r"\s*\d{4}[-/.]?\d{2}[-/.]?\d{2}\s*", value):
                dates |= _date_variants(digits)
            whole = _norm(value)
            if len(whole) >= 3:
                terms.add(whole)
            for part in re.split(r"[\^\s,;/]+", value):
                p = _norm(part)
                if (len(p) >= 3 and not p.isdigit()) or len(p) >= 4:
                    terms.add(p)
        return cls(sorted(terms, key=len, reverse=True), dates, ner)

    def match(self, text: str) -> str | None:
        """The reason ``text`` is identifying, or None."""
        compact = _norm(text)
        if not compact:
            return None
        folded = _fold(compact)
        for variant in self.date_variants:
            if variant in compact or _fold(variant) in folded:
                return "header-date"
        if any(term in compact for term in self.terms):
            return "header-value"
        for term in self.terms:
            max_dist = 0 if len(term) < 5 else (1 if len(term) < 9 else 2)
            if max_dist and _approx_contains(_fold(term), folded, max_dist):
                return "header-value~"
            if len(term) >= 4 and _fold(term) in folded:
                return "header-value~"
        for name, pattern in _PHI_PATTERNS:
            if pattern.search(text):
                return f"pattern-{name}"
        if self.ner is not None and self.ner(text):
            return "ner"
        return None


# --- policies -----------------------------------------------------------------


@dataclass
class MaskAllText:
    """Mask every region except confidently read safe annotations."""

    allow_patterns: Sequence[re.Pattern[str]] = ()
    min_text_score: float = 0.8
    max_aspect: float = 10.0
    name: str = "mask-all-text"

    def wants_text(self, region: TextRegion) -> bool:
        # Safe annotations are short ("R", "5 cm", "TR 500 TE 20"); a long
        # line is masked whatever it says.
        return region.width <= self.max_aspect * max(region.height, 1)

    def decide(self, region: TextRegion, phi: PhiMatcher) -> Decision:
        text = region.text
        if text is None:
            return Decision(True, "text")
        if not text.strip():
            return Decision(True, "text-unread")
        if (region.text_score or 0.0) >= self.min_text_score and is_safe_annotation(
            text, self.allow_patterns
        ):
            hit = phi.match(text)
            if hit is None or hit.startswith("pattern-label"):
                return Decision(False, "allow-list")
        return Decision(True, "text")


@dataclass
class MaskPhi:
    """Mask regions whose text identifies the patient; keep the rest."""

    min_text_score: float = 0.5
    name: str = "mask-phi"

    def wants_text(self, region: TextRegion) -> bool:
        return True

    def decide(self, region: TextRegion, phi: PhiMatcher) -> Decision:
        text = region.text
        if text is None or not text.strip():
            return Decision(True, "text-unread")
        if (region.text_score or 0.0) < self.min_text_score:
            return Decision(True, "text-low-confidence")
        hit = phi.match(text)
        if hit is not None:
            return Decision(True, f"phi:{hit}")
        return Decision(False, "no-phi")


def make_policy(name: str, *, allow_patterns: Sequence[str] = ()) -> TextPolicy:
    compiled = [re.compile(p, re.IGNORECASE) for p in allow_patterns]
    if name == "mask-all-text":
        return MaskAllText(allow_patterns=compiled)
    if name == "mask-phi":
        return MaskPhi()
    raise ValueError(f"unknown pixel policy {name!r}; expected one of {POLICIES}")
