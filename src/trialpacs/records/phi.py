"""The PHI engine of DICOM free text, applied to the text of records.

One :class:`RecordPhi` is built per record from the engine's outcome for its
DICOM wrapper: the same detector terms (the header's identifying values plus
those the record itself carries), the subject's pseudonym and the subject's
date shift. Replacement policy (documented in docs/records.md):

* the patient's own name or ID (a header term) becomes the subject ID, so a
  report names the subject exactly as its images do;
* a date is shifted by the subject's shift and written in the same spelling;
  a date that cannot be read becomes ``[DATE]``;
* anything else (other people, addresses, phones, institutions, other IDs)
  becomes ``[LABEL]`` like in DICOM text.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from trialpacs.deid.freetext import PhiDetector, Span, Term, terms_from_values

_MONTHS = {
    m.lower(): i + 1
    for i, m in enumerate(
        [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ]
    )
}
_MON = {k[:3]: v for k, v in _MONTHS.items()} | _MONTHS | {"sept": 9}
_MONTH_RE = "|".join(sorted(_MON, key=len, reverse=True))

_DATE_PREFIX = re.compile(
    rf"\d{{4}}[-/.]?\d{{2}}[-/.]?\d{{2}}|\d{{1,2}}[/.-]\d{{1,2}}[/.-]\d{{2,4}}|"
    rf"\d{{1,2}}[\s-](?:{_MONTH_RE})\.?[\s-]\d{{4}}|(?:{_MONTH_RE})\.?\s+\d{{1,2}},?\s+\d{{4}}",
    re.I,
)
_TOWN = re.compile(r",[ \t]*[A-Z][a-z]+(?:[ \t][A-Z][a-z]+)?(?![A-Za-z])")
_DATEISH = re.compile(rf"\d|\b(?:{_MONTH_RE})\b", re.I)

Formatter = Callable[[dt.date], str]


def _ymd(sep: str) -> Formatter:
    return lambda d: f"{d.year:04d}{sep}{d.month:02d}{sep}{d.day:02d}"


def _parse_date(text: str) -> tuple[dt.date, Formatter] | None:
    """A date in one of the spellings people use, and how to write one like it."""
    t = text.strip()
    m = re.fullmatch(r"(\d{4})([-/.]?)(\d{2})\2(\d{2})", t)
    if m:
        try:
            return dt.date(int(m[1]), int(m[3]), int(m[4])), _ymd(m[2])
        except ValueError:
            return None
    m = re.fullmatch(r"(\d{1,2})([/.-])(\d{1,2})\2(\d{2}|\d{4})", t)
    if m:
        a, b, y = int(m[1]), int(m[3]), int(m[4])
        year4 = len(m[4]) == 4
        if not year4:
            y += 2000 if y < 50 else 1900
        sep = m[2]
        wa, wb = len(m[1]), len(m[3])
        # US order when it can be, day first otherwise (and always with dots).
        month_first = sep != "." and a <= 12
        mo, d = (a, b) if month_first else (b, a)
        try:
            date = dt.date(y, mo, d)
        except ValueError:
            return None

        def fmt(x: dt.date) -> str:
            first, second = (x.month, x.day) if month_first else (x.day, x.month)
            yy = f"{x.year:04d}" if year4 else f"{x.year % 100:02d}"
            return f"{first:0{wa}d}{sep}{second:0{wb}d}{sep}{yy}"

        return date, fmt
    m = re.fullmatch(rf"(\d{{1,2}})([\s-])({_MONTH_RE})\.?\2(\d{{4}})", t, re.I)
    if m:
        mo = _MON[m[3].lower()]
        long = len(m[3]) > 3
        try:
            date = dt.date(int(m[4]), mo, int(m[1]))
        except ValueError:
            return None
        sep = m[2]
        return date, lambda x: f"{x.day}{sep}{_month_name(x, long)}{sep}{x.year}"
    m = re.fullmatch(rf"({_MONTH_RE})\.?\s+(\d{{1,2}}),?\s+(\d{{4}})", t, re.I)
    if m:
        mo = _MON[m[1].lower()]
        long = len(m[1]) > 3
        comma = "," in t
        try:
            date = dt.date(int(m[3]), mo, int(m[2]))
        except ValueError:
            return None
        return date, lambda x: f"{_month_name(x, long)} {x.day}{',' if comma else ''} {x.year}"
    return None


def _month_name(d: dt.date, long: bool) -> str:
    return d.strftime("%B" if long else "%b")


def shift_date_text(text: str, days: int | None) -> str | None:
    """``text`` shifted by ``days`` in its own spelling; None when it is not a date."""
    parsed = _parse_date(text)
    if parsed is None or days is None:
        return None
    date, fmt = parsed
    try:
        return fmt(date + dt.timedelta(days=days))
    except OverflowError:
        return None


@dataclass
class RecordPhi:
    """Scrubs record text the way the engine scrubs DICOM text, with one subject's keys."""

    detector: PhiDetector
    subject_id: str
    shift: int | None
    patient_terms: frozenset[str]

    @classmethod
    def build(
        cls,
        values: Sequence[tuple[str, str]],
        subject_id: str,
        shift: int | None,
        *,
        use_ner: bool = False,
    ) -> RecordPhi:
        """``values``: (label, text) identifying values (NAME, ID, DATE, ADDRESS, ...)."""
        terms = terms_from_values(values)
        patient = frozenset(
            t.text.lower() for t in terms if t.label in ("NAME", "ID") and len(t.text) >= 2
        )
        return cls(PhiDetector(terms, use_ner=use_ner), subject_id, shift, patient)

    @property
    def terms(self) -> list[Term]:
        return self.detector.terms

    def find(self, text: str) -> list[Span]:
        return self.detector.find(text)

    def edits(self, text: str) -> list[tuple[int, int, str]]:
        """(start, end, replacement) for each PHI span of ``text``, in order.

        A date cue rule ("DOB 01/02/1970, seen by") may take words after the
        date; only the date itself is then edited.
        """
        out = []
        for sp in self.find(text):
            if sp.label == "ADDRESS":
                # "12 Elm Street, Springfield": the town after a street is part of it.
                town = _TOWN.match(text, sp.end)
                if town is not None:
                    sp = Span(sp.start, town.end(), sp.label, sp.source)
            piece = text[sp.start : sp.end]
            if sp.label == "DATE":
                start, end, repl = self._date(piece)
                out.append((sp.start + start, sp.start + end, repl))
            elif sp.source == "header" and piece.lower() in self.patient_terms:
                out.append((sp.start, sp.end, self.subject_id))
            else:
                out.append((sp.start, sp.end, f"[{sp.label}]"))
        return out

    def _date(self, piece: str) -> tuple[int, int, str]:
        shifted = shift_date_text(piece, self.shift)
        if shifted is not None:
            return 0, len(piece), shifted
        m = _DATE_PREFIX.match(piece)
        if m is not None:
            head = shift_date_text(m.group(0), self.shift)
            if head is not None and not _DATEISH.search(piece[m.end() :]):
                return 0, m.end(), head
        return 0, len(piece), "[DATE]"

    def scrub(self, text: str) -> str:
        out: list[str] = []
        pos = 0
        for start, end, repl in self.edits(text):
            out.append(text[pos:start])
            out.append(repl)
            pos = end
        out.append(text[pos:])
        return "".join(out)

    def residual(self, text: str) -> list[str]:
        """Identifying values of the record still present in ``text`` (verification)."""
        low = text.lower()
        hits = []
        for t in self.terms:
            if t.label == "DATE" or len(t.text) < 4:
                continue
            for m in re.finditer(re.escape(t.text.lower()), low):
                s, e = m.span()
                before = low[s - 1] if s else " "
                after = low[e] if e < len(low) else " "
                if not before.isalnum() and not after.isalnum():
                    hits.append(t.text)
                    break
        return hits
