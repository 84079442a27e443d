"""The fast Part 10 writer must produce the same data set bytes as pydicom's."""

from __future__ import annotations

import struct
from pathlib import Path

from deid_helpers import SECRET

from trialpacs.deid import Deidentifier, TrialContext, load_profile
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
