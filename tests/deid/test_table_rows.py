"""One test per row of Table E.1-1 (Basic Profile) and per row of each option column.

Each puts the attribute into a synthetic instance, de-identifies it, and
checks what a user would see in the output: gone (X), empty (Z), a dummy (D),
a new 2.25 UID (U), the original (K) or a cleaned value (C).
"""

from __future__ import annotations

from functools import cache

import pytest
from deid_helpers import SECRET, base_dataset, code_item, read, to_part10
from pydicom.datadict import DicomDictionary
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from trialpacs.deid.engine import Deidentifier, TrialContext
from trialpacs.deid.iod import resolve_combined
from trialpacs.deid.profile import Profile, SafePrivate
from trialpacs.deid.table import TABLE_OPTIONS, Option, Row, load_table

ROWS = load_table()

# Elements the engine always writes itself (pseudonyms, trial attributes, marks)
ENGINE_WRITTEN = {
    0x00100010, 0x00100020, 0x00120010, 0x00120020, 0x00120021, 0x00120030, 0x00120031,
    0x00120040, 0x00120062, 0x00120063, 0x00120064,
}  # fmt: skip

SAMPLES: dict[str, object] = {
    "AE": "STATION1",
    "AS": "045Y",
    "CS": "VALUE1",
    "DA": "20200102",
    "DS": "1.5",
    "DT": "20200102030405",
    "FL": 1.5,
    "FD": 1.5,
    "IS": "7",
    "LO": "KNEE T1 HARTWELL",
    "LT": "KNEE T1 HARTWELL",
    "OB": b"\x01\x02",
    "OW": b"\x01\x02",
    "PN": "DOE^JOHN",
    "SH": "KNEE HARTWELL",
    "SL": 5,
    "SS": 5,
    "ST": "KNEE T1 HARTWELL",
    "TM": "030405",
    "UC": "KNEE T1 HARTWELL",
    "UI": "1.2.826.0.1.3680043.9.77.1",
    "UL": 5,
    "UN": b"\x01\x02",
    "UR": "http://example.org/x",
    "US": 5,
    "UT": "KNEE T1 HARTWELL",
}


def _vr(tag: int) -> str:
    return DicomDictionary[tag][0].split(" ")[0] if tag in DicomDictionary else "LO"


def _concrete_tag(row: Row) -> int:
    if row.tag is not None:
        return row.tag
    if row.key == "private":
        return 0x00091001
    if row.value == 0x50000000:
        return 0x50003000  # Curve Data
    return row.value  # (6000,3000) Overlay Data / (6000,4000) Overlay Comments


def _instance(row: Row) -> tuple[Dataset, int, str, object]:
    ds = base_dataset()
    tag = _concrete_tag(row)
    if row.key == "private":
        ds.add_new(0x00090010, "LO", "ACME 1.0")
        ds.add_new(tag, "LO", "KNEE HARTWELL")
        return ds, tag, "LO", "KNEE HARTWELL"
    vr = "OB" if tag in (0x50003000, 0x60003000) else ("LT" if tag == 0x60004000 else _vr(tag))
    if vr == "SQ":
        value: object = Sequence([code_item()])
    else:
        value = SAMPLES.get(vr, b"\x01\x02")
    if tag in ds:
        value = ds[tag].value
    else:
        ds[tag] = DataElement(tag, vr, value)
    return ds, tag, vr, value


@cache
def _deid(options: frozenset[Option]) -> Deidentifier:
    profile = Profile(
        name="test",
        options=options,
        safe_private=(SafePrivate("ACME 1.0", 0x0009, 0x01),),
    )
    return Deidentifier(profile, SECRET, TrialContext("T1", "S01"), use_ner=False)


def _check(action: str, row: Row, options: frozenset[Option]) -> None:
    if _concrete_tag(row) >> 16 == 0x0002:
        _check_file_meta(action, row, options)
        return
    ds, tag, vr, original = _instance(row)
    # Command elements (0000,eeee) are checked on the data set like any other
    # row; a Part 10 output never carries them (test_engine checks the writer).
    out = _deid(options).deidentify(ds).dataset
    shown = f"{row.label} {row.name}: expected {action}"
    if tag in ENGINE_WRITTEN:
        # replaced by the subject ID / trial values: the original must be gone
        assert tag not in out or out[tag].value != original or not original, shown
        return
    if action == "X":
        assert tag not in out, shown
    elif action == "Z":
        assert tag in out, shown
        assert out[tag].value in (None, "", b"") or (vr == "SQ" and len(out[tag].value) == 0), shown
    elif action == "K":
        assert tag in out, shown
        if vr == "SQ":
            assert len(out[tag].value) == 1, shown
        elif "HARTWELL" in str(original).upper():
            # Kept, but the patient's name part is not released with it.
            new = str(out[tag].value)
            assert "HARTWELL" not in new.upper(), shown
            assert "KNEE" in new, shown
        else:
            assert out[tag].value == original, shown
    elif action == "U":
        assert tag in out, shown
        if vr == "UI":
            assert str(out[tag].value).startswith("2.25."), shown
            assert out[tag].value != original, shown
    elif action == "D":
        assert tag in out, shown
        if vr == "SQ":
            assert len(out[tag].value) == 1, shown
        elif vr == "UI":
            assert str(out[tag].value).startswith("2.25."), shown
        else:
            assert out[tag].value not in (None, "", b""), shown
            assert out[tag].value != original or vr in ("US", "SS", "UL", "SL"), shown
    elif action == "C":
        _check_clean(out, tag, vr, original, options, shown)
    else:  # pragma: no cover
        raise AssertionError(f"unexpected action {action}")


def _check_file_meta(action: str, row: Row, options: frozenset[Option]) -> None:
    """File meta rows: the meta header is rebuilt by the writer, so check the written file."""
    ds = base_dataset()
    original = str(ds.SOPInstanceUID)
    data = to_part10(ds)  # MediaStorageSOPInstanceUID = SOPInstanceUID
    assert read(data).file_meta[row.tag].value == original
    out = read(_deid(options).deidentify_bytes(data))
    shown = f"{row.label} {row.name}: expected {action}"
    assert row.tag is not None and row.tag in out.file_meta, shown
    value = str(out.file_meta[row.tag].value)
    if action == "K":
        assert value == original, shown
    elif action == "U":
        assert value.startswith("2.25.") and value != original, shown
        assert value == str(out.SOPInstanceUID), shown  # still names the instance
    elif action == "X":
        assert row.tag not in out.file_meta, shown
    else:  # pragma: no cover
        raise AssertionError(f"no file meta check for {action}")


def _check_clean(
    out: Dataset, tag: int, vr: str, original: object, options: frozenset[Option], shown: str
) -> None:
    if vr in ("DA", "DT"):
        assert tag in out, shown
        if Option.RETAIN_LONG_MODIFIED_DATES in options:
            new = str(out[tag].value)
            assert new and new != original, shown  # shifted, still a date
            assert new[:8].isdigit(), shown
    elif vr == "TM":
        assert out[tag].value == original, shown
    elif vr == "SQ":
        assert len(out[tag].value) == 1, shown
    elif vr in ("LO", "LT", "ST", "UT", "UC", "SH"):
        new = str(out[tag].value)
        if "HARTWELL" not in str(original).upper():
            assert new == original, shown  # nothing identifying: left alone
        assert "HARTWELL" not in new.upper(), shown  # the patient's name part is gone
        assert "KNEE" in new or "KNEE" not in str(original), shown  # clinical words stay
    elif vr == "AE":
        assert out[tag].value != original and str(out[tag].value).startswith("AE"), shown
    elif vr == "CS":
        assert out[tag].value == original, shown  # nothing identifying to clean
    else:  # binary values cannot be cleaned: removed
        assert tag not in out, shown


def _basic_expected(row: Row) -> str:
    return resolve_combined(row.basic, _concrete_tag(row), "image")


@pytest.mark.parametrize("row", ROWS, ids=[f"{r.key}-{r.basic}" for r in ROWS])
def test_basic_profile_row(row: Row) -> None:
    _check(_basic_expected(row), row, frozenset())


OPTION_CASES = [(opt, row) for opt in TABLE_OPTIONS for row in ROWS if opt in row.options]


@pytest.mark.parametrize(
    ("option", "row"),
    OPTION_CASES,
    ids=[f"{o.value}-{r.key}-{r.options[o]}" for o, r in OPTION_CASES],
)
def test_option_column_row(option: Option, row: Row) -> None:
    action = resolve_combined(row.options[option], _concrete_tag(row), "image")
    _check(action, row, frozenset({option}))


def test_table_has_all_621_rows_and_known_codes() -> None:
    assert len(ROWS) == 621
    assert {r.basic for r in ROWS} == {
        "D", "Z", "X", "K", "C", "U", "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"
    } - {"K", "C"} | ({r.basic for r in ROWS} & {"K", "C"})  # fmt: skip
    assert sum(1 for _ in OPTION_CASES) == sum(len(r.options) for r in ROWS)


@pytest.mark.parametrize(
    ("code", "tag", "kind", "expected"),
    [
        ("X/Z", 0x00080022, "image", "X"),  # Acquisition Date: Type 3
        ("Z/D", 0x00080023, "image", "Z"),  # Content Date: Type 2C in General Image
        ("Z/D", 0x00080023, "enhanced", "D"),  # Type 1 in multi-frame IODs
        ("X/Z/D", 0x00181000, "enhanced", "D"),  # Device Serial Number, Enhanced Equipment
        ("X/Z/D", 0x00181000, "image", "X"),
        ("X/Z/U*", 0x00082112, "enhanced", "U"),  # Source Image Sequence, Derivation Image
        ("X/Z/U*", 0x00081140, "image", "X"),
        ("Z/D", 0x00100020, "image", "Z"),
    ],
)
def test_combined_codes_resolve_per_iod_type(code: str, tag: int, kind: str, expected: str) -> None:
    assert resolve_combined(code, tag, kind) == expected  # type: ignore[arg-type]
