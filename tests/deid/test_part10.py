"""The engine's Part 10 reader accepts and refuses exactly what parse_part10 does."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from deid_helpers import SECRET, base_dataset, to_part10
from pydicom import config, dcmread
from pydicom.filereader import read_dataset

from trialpacs.deid import Deidentifier, TrialContext, load_profile
from trialpacs.deid import part10 as part10_mod
from trialpacs.deid.part10 import read_part10
from trialpacs.dicom.parse import parse_part10
from trialpacs.errors import InvalidInput


def _fast_or_none(data: bytes) -> object:
    try:
        return part10_mod._fast(data)
    except part10_mod._Slow:
        return None


def test_corpus_reads_like_parse_part10_and_mostly_on_the_fast_path(
    testdata_files: list[Path],
) -> None:
    fast = 0
    for path in testdata_files:
        data = path.read_bytes()
        ds, ts = read_part10(data)
        parsed = parse_part10(data)
        assert ts == parsed.transfer_syntax, path.name
        assert list(ds.keys()) == list(parsed.dataset.keys()), path.name
        for tag in list(ds._dict):
            assert ds[tag].value == parsed.dataset[tag].value or tag == 0x7FE00010, path.name
        fast += _fast_or_none(data) is not None
    assert fast >= len(testdata_files) - 2  # big endian / deflated ones may go the slow way


def _bad_inputs() -> dict[str, bytes]:
    good = to_part10(base_dataset())
    sop = b"1.2.826.0.1.3680043.9.1.1.1.1\x00"
    other_meta = good.replace(sop, b"1.2.826.0.1.3680043.9.1.1.1.2\x00", 1)  # the meta's copy
    bad_uid = good[:200] + good[200:].replace(sop, b"1.2.826.0.1.3680043.9.1.1.1.X\x00")
    return {
        "short": good[:100],
        "no DICM": good[:128] + b"XXXX" + good[132:],
        "cut in a value": good[:-3],
        "cut in a header": good + b"\x10\x00\x20",
        "SOP UID differs from meta": other_meta,
        "SOP UID not a UID": bad_uid,
        "pixel data short": to_part10(_short_pixels()),
    }


def _short_pixels():  # type: ignore[no-untyped-def]
    ds = base_dataset()
    ds.Rows = 4
    return ds


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
@pytest.mark.parametrize("name", list(_bad_inputs()))
def test_refusals_read_exactly_as_parse_part10(name: str) -> None:
    data = _bad_inputs()[name]
    with pytest.raises(InvalidInput) as expected:
        parse_part10(data)
    with pytest.raises(InvalidInput) as got:
        read_part10(data)
    assert str(got.value) == str(expected.value)


def test_standard_attributes_stored_as_un_are_written_with_their_vr(testdata: Path) -> None:
    deid = Deidentifier(load_profile("trial"), SECRET, TrialContext("T", "S"), use_ner=False)
    out = deid.deidentify_bytes((testdata / "ct" / "explicit_VR-UN.dcm").read_bytes())
    (meta_len,) = struct.unpack("<I", out[140:144])
    raw = read_dataset(io.BytesIO(out[144 + meta_len :]), False, True)._dict
    assert raw[0x00080060].VR == "CS" and raw[0x00080060].value == b"CT"  # Modality
    assert raw[0x00200032].VR == "DS"  # Image Position (Patient)
    assert raw[0x00080016].VR == "UI"
    prev = config.replace_un_with_known_vr
    try:
        config.replace_un_with_known_vr = False
        assert dcmread(io.BytesIO(out)).Modality == "CT"
    finally:
        config.replace_un_with_known_vr = prev
