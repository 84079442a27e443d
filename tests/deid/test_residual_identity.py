"""The patient's identity copied into attributes Table E.1-1 leaves alone is still removed."""

from __future__ import annotations

import io

from deid_helpers import SECRET, base_dataset, read, to_part10
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ImplicitVRLittleEndian

from trialpacs.deid import Deidentifier, TrialContext, load_profile

TRIAL = TrialContext(trial_id="TRIAL-7", site_id="S01")


def _deid(ds: Dataset) -> tuple[bytes, Dataset]:
    engine = Deidentifier(load_profile("trial"), SECRET, TRIAL, use_ner=False)
    out = engine.deidentify_bytes(to_part10(ds))
    return out, read(out)


def test_patient_id_in_an_unlisted_code_string_is_blanked() -> None:
    ds = base_dataset(patient_id="MRN-445566")
    ds.add_new(0x00189004, "CS", "MRN-445566")  # ContentQualification: not in Table E.1-1
    ds.add_new(0x00180024, "SH", "SEQ MRN445566")  # SequenceName, unlisted: the ID without '-'
    out, released = _deid(ds)
    assert b"445566" not in out
    assert released[0x00189004].value in ("", None)
    assert "445566" not in str(released[0x00180024].value)


def test_name_in_an_unlisted_text_is_scrubbed_not_dropped() -> None:
    ds = base_dataset(patient_name="QUARTERMAINE^ELSPETH")
    ds.add_new(0x00180024, "SH", "ELSPETH T1")
    out, released = _deid(ds)
    assert b"ELSPETH" not in out.upper()
    assert "T1" in str(released[0x00180024].value)


def test_identity_only_inside_other_patient_ids_items_is_found() -> None:
    # The atheris input's shape: no top-level PatientID, the ID and a second
    # name only in OtherPatientIDsSequence items (nested), copied elsewhere.
    ds = base_dataset()
    del ds.PatientID
    inner = Dataset()
    inner.PatientID = "ZX-90817"
    inner.PatientName = "VANTERPOOL^MIRANDA"
    outer = Dataset()
    outer.PatientID = "ZX-90817"
    outer.OtherPatientIDsSequence = Sequence([inner])  # nested one level deeper
    ds.OtherPatientIDsSequence = Sequence([outer])
    ds.add_new(0x00189004, "CS", "ZX-90817")
    # ProtocolName is cleaned (C) before the items are read.
    ds.ProtocolName = "knee protocol for Miranda Vanterpool"
    out, released = _deid(ds)
    assert b"90817" not in out
    assert b"VANTERPOOL" not in out.upper()
    assert "knee protocol for" in str(released.ProtocolName)


def test_a_short_id_does_not_blank_unrelated_values() -> None:
    ds = base_dataset(patient_id="12")
    ds.add_new(0x00189004, "CS", "12")
    ds.add_new(0x00180024, "SH", "SEQ 12")
    _, released = _deid(ds)
    assert released[0x00189004].value == "12"
    assert released[0x00180024].value == "SEQ 12"


def test_bytes_of_unknown_meaning_holding_the_id_are_removed() -> None:
    ds = base_dataset(patient_id="MRN-445566")
    ds.add_new(0x00700256, "OB", b"xx MRN-445566 xx")  # FillPattern: OB, unlisted
    ds.add_new(0x00282000, "OB", b"ICC profile bytes, no identity")  # kept as it is
    out, released = _deid(ds)
    assert b"445566" not in out
    assert 0x00700256 not in released
    assert released[0x00282000].value == b"ICC profile bytes, no identity"


def _id_in_private_sequence() -> Dataset:
    """No top-level PatientID; the ID only in a private sequence's item."""
    ds = base_dataset()
    del ds.PatientID
    item = Dataset()
    item.PatientID = "PV-300411"
    ds.add_new(0x00110010, "LO", "SOME VENDOR")
    ds.add_new(0x00111001, "SQ", Sequence([item]))
    return ds


def test_identity_inside_a_removed_private_sequence_counts() -> None:
    ds = _id_in_private_sequence()  # removed with its block
    ds.add_new(0x00180024, "SH", "PV-300411")
    out, _ = _deid(ds)
    assert b"300411" not in out


def test_identity_inside_an_implicit_vr_private_sequence_counts() -> None:
    ds = _id_in_private_sequence()
    # Undefined length: the one way an implicit VR reader knows it is a sequence.
    ds[0x00111001].is_undefined_length = True
    ds.add_new(0x00180024, "SH", "PV-300411")
    data = to_part10(ds)
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian  # VR-less: the SQ is read on demand
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    data = buf.getvalue()
    assert b"SQ" not in data[data.index(b"\x11\x00\x01\x10") :][:8]
    engine = Deidentifier(load_profile("trial"), SECRET, TRIAL, use_ner=False)
    out = engine.deidentify_bytes(data)
    assert b"300411" not in out


def test_long_ids_are_found_inside_words_short_name_parts_are_not() -> None:
    ds = base_dataset(patient_id="MRN-445566", patient_name="ROE^ANN")
    ds.add_new(0x00180024, "SH", "SEQxMRN445566")  # glued: still the ID
    ds.add_new(0x00189004, "CS", "ROENTGEN")  # "ROE" inside a word: not the name
    out, released = _deid(ds)
    assert b"445566" not in out
    assert released[0x00189004].value == "ROENTGEN"
