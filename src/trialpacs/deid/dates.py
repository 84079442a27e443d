"""Per-subject date shifting and age capping.

One whole-day shift per subject keeps every interval between that subject's
visits (and every time of day) exactly, while moving the calendar dates.
"""

from __future__ import annotations

import datetime as dt

from trialpacs.deid.keys import derive, keyed_hash

_ONE_DAY = dt.timedelta(days=1)


def subject_shift(secret: bytes, subject_key: str, lo: int, hi: int) -> int:
    """Days to add to this subject's dates: keyed, stable, within [lo, hi]."""
    if lo == hi:
        return lo
    digest = keyed_hash(derive(secret, "date-shift"), subject_key)
    return lo + int.from_bytes(digest[:8], "big") % (hi - lo + 1)


def _shift_date(text: str, days: int) -> str | None:
    """Shift YYYYMMDD (also YYYY.MM.DD, YYYY-MM-DD); None if not a date."""
    digits = text.replace(".", "").replace("-", "") if len(text) == 10 else text
    if len(digits) != 8 or not digits.isdigit():
        return None
    try:
        d = dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
        return (d + dt.timedelta(days=days)).strftime("%Y%m%d")
    except (ValueError, OverflowError):
        return None


def shift_da(value: str, days: int) -> str | None:
    """Shift a DA value (multi-valued and ranges too); None when unparsable."""
    out = []
    for v in value.strip("\x00 ").split("\\"):
        v = v.strip()
        if not v:
            out.append("")
            continue
        if "-" in v and len(v) != 10:
            parts = [p.strip() for p in v.split("-")]
            shifted = [_shift_date(p, days) if p else "" for p in parts]
            if any(s is None for s in shifted):
                return None
            out.append("-".join(s or "" for s in shifted))
            continue
        s = _shift_date(v, days)
        if s is None:
            return None
        out.append(s)
    return "\\".join(out)


def _shift_dt_one(v: str, days: int) -> str | None:
    """One DT value: YYYY[MM[DD[HH[MM[SS[.F]]]]]] with an optional +HHMM offset."""
    main, offset = v, ""
    if "+" in v:
        main, offset = v.split("+", 1)
        offset = "+" + offset
    elif len(v) > 13 and v[-5] == "-" and v[-4:].isdigit():
        main, offset = v[:-5], v[-5:]
    date_part = main[:8]
    if not date_part.isdigit() or main[8:].strip("0123456789."):
        return None
    pad = {4: "0101", 6: "01", 8: ""}.get(len(date_part))
    if pad is None:
        return None
    shifted = _shift_date(date_part + pad, days)
    if shifted is None:
        return None
    return shifted[: len(date_part)] + main[8:] + offset


def shift_dt(value: str, days: int) -> str | None:
    """Shift a DT value (multi-valued and ranges too); None when unparsable."""
    out = []
    for v in value.strip("\x00 ").split("\\"):
        v = v.strip()
        if not v:
            out.append("")
            continue
        one = _shift_dt_one(v, days)
        if one is None and "-" in v:
            parts = v.split("-")
            if len(parts) != 2:
                return None
            shifted = [_shift_dt_one(p, days) if p else "" for p in parts]
            if any(x is None for x in shifted):
                return None
            one = "-".join(x or "" for x in shifted)
        if one is None:
            return None
        out.append(one)
    return "\\".join(out)


def cap_age(value: str) -> str:
    """HIPAA Safe Harbor: ages over 89 are reported as 90 (AS cannot say "90+")."""
    v = value.strip("\x00 ")
    if len(v) == 4 and v[:3].isdigit() and v[3] == "Y" and int(v[:3]) > 89:
        return "090Y"
    return v


def age_years(birth: str, on: str) -> int | None:
    """Whole years between two DA values, or None if either is unusable."""
    try:
        b = dt.date(int(birth[:4]), int(birth[4:6]), int(birth[6:8]))
        o = dt.date(int(on[:4]), int(on[4:6]), int(on[6:8]))
    except (ValueError, IndexError):
        return None
    return o.year - b.year - ((o.month, o.day) < (b.month, b.day))
