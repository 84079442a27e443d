"""The fast Part 10 writer must produce the same data set bytes as pydicom's."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from deid_helpers import SECRET, base_dataset, read, to_part10

from trialpacs.deid import Deidentifier, Option, Profile, TrialContext, load_profile
from trialpacs.deid.writer import encode_part10
from trialpacs.dicom.parse import parse_part10, write_part10


def _body(data: bytes) -> bytes:
    (meta_len,) = struct.unpack("<I", data[140:144])
    return data[144 + meta_len :]


def test_fast_writer_matches_pydicom_on_the_corpus(testdata_files: list[Path]) -> None:
    deid = Deidentifier(load_profile("trial"), SECRET, TrialContext("T", "S"), use_ner=False)
    assert testdata_files
    for path in testdata_files:
        parsed = parse_part10(path.read_bytes())
        result = deid.deidentify(parsed.dataset, in_place=True)
        fast = encode_part10(result.dataset, parsed.transfer_syntax)
        slow = write_part10(result.dataset, parsed.transfer_syntax)
        assert fast[:132] == b"\x00" * 128 + b"DICM"
        assert _body(fast) == _body(slow), path.name


def _with_command_elements(data: bytes) -> bytes:
    """Insert (0000,1000) and (0000,1001) at the start of the data set (a faulty SCU's file)."""
    (meta_len,) = struct.unpack("<I", data[140:144])
    at = 144 + meta_len
    uid = b"1.2.826.0.1.3680043.9.1.1.1.1\x00"
    cmd = b"".join(
        struct.pack("<HH", 0x0000, el) + b"UI" + struct.pack("<H", len(uid)) + uid
        for el in (0x1000, 0x1001)
    )
    return data[:at] + cmd + data[at:]


@pytest.mark.filterwarnings("ignore:Expected implicit VR")  # pydicom on group 0000
def test_command_elements_in_a_stored_data_set_are_never_written() -> None:
    data = _with_command_elements(to_part10(base_dataset()))
    assert 0x00001001 in read(data)
    for options in (frozenset(), frozenset({Option.RETAIN_UIDS})):
        deid = Deidentifier(Profile("t", options=options), SECRET, use_ner=False)
        out = deid.deidentify_bytes(data)
        ds = read(out)
        assert not [t for t in ds._dict if t >> 16 == 0], options
        assert ds.PatientIdentityRemoved == "YES"
        if not options:  # basic: the original SOP Instance UID is nowhere in the output
            assert b"1.2.826.0.1.3680043.9.1.1.1.1\x00" not in out
