"""HL7 v2 report messages (ORU^R01 and friends): parse, read the patient, de-identify.

A small parser of our own (the ``hl7`` package on PyPI is unmaintained since
2022 and does not write messages back): segments split on CR (LF and CRLF
accepted), delimiters taken from MSH-1/MSH-2, repetitions, components and
sub-components kept as strings, escape sequences decoded only where text is
scrubbed and encoded again after.

De-identification profile (docs/records.md has the table): a field is kept
(K), set to the subject ID (P), shifted (D, HL7 TS/DT keep their precision
and time), scrubbed by the PHI engine (C) or emptied (X). Segments not in
:data:`PROFILE` (NK1, PD1, GT1, IN1, Z-segments, ...) are dropped whole.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass

from trialpacs.errors import InvalidInput
from trialpacs.records.identity import PatientIdentity
from trialpacs.records.phi import RecordPhi

MAX_SEGMENTS = 10_000

# Per segment: field number -> action; fields not listed are emptied (X).
PROFILE: dict[str, dict[int, str]] = {
    "MSH": {1: "K", 2: "K", 3: "K", 7: "D", 9: "K", 11: "K", 12: "K", 15: "K", 16: "K", 18: "K"},
    "EVN": {1: "K", 2: "D", 6: "D"},
    "PID": {1: "K", 3: "P", 5: "P", 7: "D", 8: "K", 10: "K", 15: "K", 22: "K", 29: "D", 30: "K"},
    "PV1": {1: "K", 2: "K", 4: "K", 10: "K", 18: "K", 44: "D", 45: "D"},
    "ORC": {1: "K", 5: "K", 9: "D", 15: "D"},
    "OBR": {
        1: "K",
        4: "K",
        6: "D",
        7: "D",
        8: "D",
        14: "D",
        22: "D",
        24: "K",
        25: "K",
        13: "C",
        31: "C",
    },
    "OBX": {
        1: "K",
        2: "K",
        3: "K",
        4: "K",
        5: "C",
        6: "K",
        7: "K",
        8: "K",
        11: "K",
        14: "D",
        19: "D",
    },
    "NTE": {1: "K", 2: "K", 3: "C"},
    "SPM": {1: "K", 4: "K", 8: "K", 17: "D", 18: "D"},
}
# OBX value types whose OBX-5 is free text; coded/numeric values are kept.
TEXT_TYPES = frozenset({"TX", "FT", "ST"})


@dataclass
class Message:
    """Segments as lists of raw (still escaped) field strings; field 0 is the segment ID."""

    segments: list[list[str]]
    field_sep: str
    encoding: str  # component, repetition, escape, subcomponent (MSH-2)

    @property
    def component(self) -> str:
        return self.encoding[0]

    @property
    def repetition(self) -> str:
        return self.encoding[1] if len(self.encoding) > 1 else "~"

    @property
    def escape(self) -> str:
        return self.encoding[2] if len(self.encoding) > 2 else "\\"

    @property
    def subcomponent(self) -> str:
        return self.encoding[3] if len(self.encoding) > 3 else "&"

    def segment(self, name: str) -> list[str] | None:
        return next((s for s in self.segments if s[0] == name), None)

    def field(self, seg: list[str], n: int) -> str:
        """Field ``n`` in HL7 numbering (MSH-1 is the separator itself)."""
        if seg[0] == "MSH":
            if n == 1:
                return self.field_sep
            idx = n - 1
        else:
            idx = n
        return seg[idx] if idx < len(seg) else ""

    def set_field(self, seg: list[str], n: int, value: str) -> None:
        if seg[0] == "MSH" and n <= 2:
            return
        idx = n - 1 if seg[0] == "MSH" else n
        while len(seg) <= idx:
            seg.append("")
        seg[idx] = value

    def unescape(self, text: str) -> str:
        e = self.escape
        table = {
            "F": self.field_sep,
            "S": self.component,
            "T": self.subcomponent,
            "R": self.repetition,
            "E": e,
            ".br": "\n",
        }
        pattern = re.compile(re.escape(e) + r"(F|S|T|R|E|\.br)" + re.escape(e))
        return pattern.sub(lambda m: table[m.group(1)], text)

    def escape_text(self, text: str) -> str:
        e = self.escape
        out = text.replace(e, f"{e}E{e}")
        for ch, code in (
            (self.field_sep, "F"),
            (self.component, "S"),
            (self.subcomponent, "T"),
            (self.repetition, "R"),
        ):
            out = out.replace(ch, f"{e}{code}{e}")
        return out.replace("\r\n", "\n").replace("\n", f"{e}.br{e}")

    def to_text(self) -> str:
        lines = []
        for seg in self.segments:
            if seg[0] == "MSH":
                lines.append("MSH" + self.field_sep + self.field_sep.join(seg[1:]))
            else:
                lines.append(self.field_sep.join(seg))
        return "\r".join(lines) + "\r"


def parse(text: str) -> Message:
    """Parse an ER7 message; InvalidInput naming the problem otherwise."""
    text = text.lstrip("\ufeff\x0b").rstrip("\x1c\r\n ")
    if not text.startswith("MSH") or len(text) < 8:
        raise InvalidInput("HL7 v2: the message must start with an MSH segment")
    fs = text[3]
    rest = text[4:]
    enc_end = rest.find(fs)
    if enc_end < 1 or enc_end > 4:
        raise InvalidInput("HL7 v2: MSH-2 (encoding characters) is missing or malformed")
    encoding = rest[:enc_end]
    if fs.isalnum() or any(c.isalnum() for c in encoding):
        raise InvalidInput("HL7 v2: delimiters must not be letters or digits")
    lines = [ln for ln in re.split(r"\r\n|\r|\n", text) if ln.strip()]
    if len(lines) > MAX_SEGMENTS:
        raise InvalidInput(f"HL7 v2: more than {MAX_SEGMENTS} segments")
    segments: list[list[str]] = []
    for i, line in enumerate(lines):
        if i == 0:
            segments.append(["MSH", encoding, *line[4 + enc_end + 1 :].split(fs)])
            continue
        fields = line.split(fs)
        if not re.fullmatch(r"[A-Z][A-Z0-9]{2}", fields[0]):
            raise InvalidInput(
                f"HL7 v2: segment {i + 1} has no valid segment ID: {fields[0][:10]!r}"
            )
        segments.append(fields)
    return Message(segments, fs, encoding)


def _first(msg: Message, value: str) -> str:
    """First repetition, first component (an ID number, a family name)."""
    return value.split(msg.repetition)[0].split(msg.component)[0]


def patient_identity(msg: Message) -> PatientIdentity:
    """The patient of PID: PID-3 (first identifier and its assigning authority), PID-5, -7, -8."""
    pid = msg.segment("PID")
    if pid is None:
        raise InvalidInput("HL7 v2: the message has no PID segment")
    ids = [r for r in msg.field(pid, 3).split(msg.repetition) if r]
    if not ids:
        raise InvalidInput("HL7 v2: PID-3 (patient identifier list) is empty")
    comps = ids[0].split(msg.component)
    patient_id = msg.unescape(comps[0])
    issuer = msg.unescape(comps[3].split(msg.subcomponent)[0]) if len(comps) > 3 else ""
    name_comps = msg.field(pid, 5).split(msg.repetition)[0].split(msg.component)
    name = "^".join(msg.unescape(c) for c in name_comps[:2] if c).rstrip("^")
    birth = msg.field(pid, 7)[:8]
    sex = msg.field(pid, 8)[:1]
    extra: list[tuple[str, str]] = []
    for rep in ids[1:]:
        extra.append(("ID", msg.unescape(rep.split(msg.component)[0])))
    for n, label in (
        (2, "ID"),
        (4, "ID"),
        (18, "ID"),
        (19, "ID"),
        (20, "ID"),
        (6, "NAME"),
        (9, "NAME"),
    ):
        for rep in msg.field(pid, n).split(msg.repetition):
            c = msg.unescape(rep.split(msg.component)[0])
            if c:
                extra.append((label, c))
            if label == "NAME":
                parts = [msg.unescape(x) for x in rep.split(msg.component)[:2] if x]
                if len(parts) == 2:
                    extra.append(("NAME", "^".join(parts)))
    for rep in msg.field(pid, 11).split(msg.repetition):
        comps = [msg.unescape(c) for c in rep.split(msg.component)]
        if comps and comps[0]:
            extra.append(("ADDRESS", comps[0].split(msg.subcomponent)[0]))
        if len(comps) > 2 and comps[2]:
            extra.append(("ADDRESS", comps[2]))  # city
        if len(comps) > 4 and comps[4]:
            extra.append(("ADDRESS", comps[4]))  # postal code
    for n in (13, 14):
        for rep in msg.field(pid, n).split(msg.repetition):
            c = msg.unescape(rep.split(msg.component)[0])
            if c:
                extra.append(("PHONE", c))
            comps = rep.split(msg.component)
            if len(comps) > 3 and comps[3]:
                extra.append(("EMAIL", msg.unescape(comps[3])))
    for seg in msg.segments:
        if seg[0] == "NK1":
            for n, label in ((2, "NAME"), (4, "ADDRESS"), (5, "PHONE")):
                rep = msg.field(seg, n).split(msg.repetition)[0]
                parts = [msg.unescape(c) for c in rep.split(msg.component)[:2] if c]
                if parts:
                    extra.append((label, parts[0] if label != "NAME" else "^".join(parts)))
    return PatientIdentity(
        patient_id=patient_id,
        name=name,
        birth_date=birth if re.fullmatch(r"\d{8}", birth) else "",
        sex=sex if sex in ("M", "F", "O") else "",
        issuer=issuer,
        extra=tuple(extra),
    )


def shift_ts(value: str, days: int | None) -> str:
    """An HL7 TS/DT shifted by whole days, precision and time kept; '' when unreadable."""
    m = re.fullmatch(r"(\d{4})(\d{2})?(\d{2})?(.*)", value)
    if not m or days is None:
        return ""
    if m[2] is None or m[3] is None:
        return ""  # year or year-month only: cannot shift by days and stay honest
    try:
        d = dt.date(int(m[1]), int(m[2]), int(m[3])) + dt.timedelta(days=days)
    except (ValueError, OverflowError):
        return ""
    return d.strftime("%Y%m%d") + m[4]


def report_text(msg: Message) -> str:
    """The narrative of the report: text OBX values and NTE comments, in order."""
    lines: list[str] = []
    for seg in msg.segments:
        if seg[0] == "OBX" and msg.field(seg, 2) in TEXT_TYPES:
            for rep in msg.field(seg, 5).split(msg.repetition):
                lines.append(msg.unescape(rep))
        elif seg[0] == "NTE":
            lines.append(msg.unescape(msg.field(seg, 3)))
    return "\n".join(lines)


@dataclass(frozen=True)
class Hl7Result:
    text: str
    dropped_segments: tuple[str, ...]


def deidentify(text: str, phi: RecordPhi, *, trial_id: str = "", site_id: str = "") -> Hl7Result:
    msg = parse(text)
    kept: list[list[str]] = []
    dropped: list[str] = []
    subject = msg.escape_text(phi.subject_id)
    for seg in msg.segments:
        rules = PROFILE.get(seg[0])
        if rules is None:
            dropped.append(seg[0])
            continue
        count = len(seg) if seg[0] != "MSH" else len(seg) + 1
        for n in range(1, count):
            action = rules.get(n, "X")
            value = msg.field(seg, n)
            if not value or action == "K":
                continue
            if action == "X":
                msg.set_field(seg, n, "")
            elif action == "P":
                if n == 3:
                    msg.set_field(
                        seg, n, f"{subject}{msg.component * 3}{msg.escape_text(trial_id)}"
                    )
                else:
                    msg.set_field(seg, n, subject)
            elif action == "D":
                msg.set_field(seg, n, _map_reps(msg, value, lambda v: shift_ts(v, phi.shift)))
            elif action == "C":
                if seg[0] == "OBX" and msg.field(seg, 2) not in TEXT_TYPES:
                    continue  # coded and numeric results carry no free text
                msg.set_field(
                    seg,
                    n,
                    msg.repetition.join(
                        msg.escape_text(phi.scrub(msg.unescape(r)))
                        for r in value.split(msg.repetition)
                    ),
                )
        if seg[0] == "MSH":
            msg.set_field(seg, 4, msg.escape_text(site_id))  # sending facility: the site
            msg.set_field(seg, 10, "DEID")
        kept.append(seg)
    msg.segments = kept
    return Hl7Result(msg.to_text(), tuple(dropped))


def _map_reps(msg: Message, value: str, fn: Callable[[str], str]) -> str:
    """Apply to the first component of each repetition (TS may carry a precision component)."""
    out = []
    for rep in value.split(msg.repetition):
        comps = rep.split(msg.component)
        comps[0] = fn(comps[0])
        out.append(msg.component.join(comps[:1]))
    return msg.repetition.join(out)
