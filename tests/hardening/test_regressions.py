"""What the fuzzers found, each pinned as a regression test (see docs/hardening.md)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag

from hardening.corpus_gen import base, write
from hardening.fuzzing import seed_files
from trialpacs.access.apikeys import create_key
from trialpacs.archive import Archive
from trialpacs.deid import Deidentifier, TrialContext, load_profile
from trialpacs.dicom.parse import parse_part10
from trialpacs.errors import InvalidInput
from trialpacs.index import qido
from trialpacs.settings import Settings
from trialpacs.web import multipart
from trialpacs.web.app import create_app

CRASHES = Path(__file__).parent / "corpus" / "crashes"


def test_deflated_instances_are_accepted() -> None:
    # The truncation check compared offsets in the inflated stream with the
    # received (deflated) length and refused every deflated instance as
    # "unreadable bytes after the last element".
    parsed = parse_part10(seed_files()["deflated.dcm"])
    assert parsed.transfer_syntax == "1.2.840.10008.1.2.1.99"


def test_truncated_deflated_instance_is_refused() -> None:
    data = seed_files()["deflated.dcm"]
    with pytest.raises(InvalidInput, match="decompressing"):
        parse_part10(data[:-40])


@pytest.mark.parametrize("ts", ["1.2.840.10008.1.3", "1.2.840.10008.5.1.4", "1.2.3.4"])
def test_transfer_syntax_uid_that_is_no_transfer_syntax_is_refused(ts: str) -> None:
    # pydicom raised ValueError("UID is not a transfer syntax.") from
    # UID.is_compressed: a 500 for STOW-RS, an aborted C-STORE.
    data = write(base(1), "1.2.840.10008.1.2.1")
    good = b"1.2.840.10008.1.2.1\x00"
    assert good in data[:400]
    # Same length as the original value so the meta group length stays right.
    bad = ts.encode().ljust(len(good), b"\x00")[: len(good)]
    patched = data.replace(good, bad, 1)
    with pytest.raises(InvalidInput, match="not a known transfer syntax"):
        parse_part10(patched)


@pytest.mark.parametrize("boundary", ["bøundary", "a\x00b", "line\nbreak", "\u2603"])
def test_non_ascii_boundary_is_refused(boundary: str) -> None:
    # multipart.split encoded the boundary as latin-1: UnicodeEncodeError.
    with pytest.raises(InvalidInput, match="printable ASCII"):
        multipart.split(b"--x\r\n\r\nbody\r\n--x--", boundary)


def test_too_many_parts_are_refused() -> None:
    body = b"".join(multipart.stream([("application/dicom", b"x")] * 5, "b"))
    assert len(multipart.split(body, "b", 5)) == 5
    with pytest.raises(InvalidInput, match="more than 4 parts"):
        multipart.split(body, "b", 4)


def test_meta_element_with_unknown_vr_is_refused() -> None:
    # pydicom raised NotImplementedError("Unknown Value Representation 'TI'")
    # when reading MediaStorageSOPInstanceUID: a 500 for STOW-RS.
    data = write(base(1), "1.2.840.10008.1.2.1")
    patched = data.replace(b"\x02\x00\x03\x00UI", b"\x02\x00\x03\x00TI", 1)
    assert patched != data
    with pytest.raises(InvalidInput, match=r"\(0002,0003\) has an unknown value representation"):
        parse_part10(patched)


def test_transfer_syntax_encoded_as_sequence_is_refused() -> None:
    # Found by atheris (bench/fuzz_atheris_parse.py): str() of a SQ-encoded
    # TransferSyntaxUID raised NotImplementedError (unknown VR inside): a 500.
    crash = CRASHES / "atheris-ts-as-sequence.bin"
    with pytest.raises(InvalidInput, match=r"TransferSyntaxUID \(0002,0010\) is not a UID"):
        parse_part10(crash.read_bytes())


def _refused_by_ingest_and_deid(crash: bytes, refusal: str) -> None:
    """Ingest and de-identification refuse the same input with the same words."""
    with pytest.raises(InvalidInput, match=refusal):
        parse_part10(crash)
    with pytest.raises(InvalidInput, match=refusal):
        _deidentifier().deidentify_part10(crash)


def _deidentifier() -> Deidentifier:
    return Deidentifier(
        load_profile("trial"),
        b"regression-secret-0123456789abcd",
        TrialContext("T1", "S1"),
        use_ner=False,
    )


def test_data_set_element_with_unknown_vr_is_refused() -> None:
    # Found by atheris (bench/fuzz_atheris.py --target deid): a bit flip made
    # BitsStored's VR 'U\xd3'. parse_part10 accepted it, and the de-identified
    # copy written from it was unreadable (a released instance nobody can open).
    crash = (CRASHES / "atheris-deid-unknown-vr.bin").read_bytes()
    with pytest.raises(InvalidInput, match=r"\(0028,0101\) has an unknown value representation"):
        parse_part10(crash)
    with pytest.raises(InvalidInput, match="unknown value representation"):
        _deidentifier().deidentify_part10(crash)
    data = write(base(1), "1.2.840.10008.1.2.1")
    patched = data.replace(b"\x28\x00\x01\x01US", b"\x28\x00\x01\x01U\xd3", 1)
    assert patched != data
    with pytest.raises(InvalidInput, match=r"\(0028,0101\) has an unknown value representation"):
        parse_part10(patched)


def test_undefined_length_outside_sequences_and_pixel_data_is_refused() -> None:
    # Found by atheris (--target deid): VR bytes FF FF made pydicom read the
    # element as implicit VR, InstanceNumber (IS) with undefined length
    # swallowing the elements after it; the de-identified copy wrote it with a
    # 16-bit length and was unreadable.
    crash = (CRASHES / "atheris-deid-undefined-length-is.bin").read_bytes()
    with pytest.raises(InvalidInput, match=r"\(0020,0013\) \(IS\) has an undefined length"):
        parse_part10(crash)
    with pytest.raises(InvalidInput, match="undefined length"):
        _deidentifier().deidentify_part10(crash)
    # Sequences and encapsulated pixel data of undefined length stay accepted,
    # in explicit and implicit VR.
    for name in ("nested_sequences.dcm", "rle_3_frames.dcm"):
        parse_part10(seed_files()[name])
    implicit = base(2)
    implicit.OtherPatientIDsSequence = Sequence([Dataset()])
    implicit.OtherPatientIDsSequence[0].PatientID = "X"
    implicit.OtherPatientIDsSequence.is_undefined_length = True
    parse_part10(write(implicit, "1.2.840.10008.1.2"))


@pytest.mark.parametrize(
    ("name", "tag"),
    [
        ("atheris-deid-undefined-length-ffff.bin", "FFFF,FFFF"),
        ("atheris-deid-undefined-length-unknown-tag.bin", "0028,FF02"),
        ("atheris-deid-private-without-vr.bin", "0013,FFFF"),
    ],
)
def test_element_without_a_valid_vr_in_explicit_vr_is_refused(name: str, tag: str) -> None:
    # Found by atheris (--target deid): VR bytes pydicom does not know made it
    # read the element as implicit VR; with undefined length (FF FF FF FF)
    # it swallowed the RLE pixel data. The de-identified copy had no pixel
    # data and no sequence delimiter: unreadable in its own (encapsulated)
    # transfer syntax. First (FFFF,FFFF), then (0028,FF02), then a private
    # (0013,FFFF), each slipping past the previous, narrower fix.
    crash = (CRASHES / name).read_bytes()
    with pytest.raises(InvalidInput, match=rf"\({tag}\) has no valid value representation"):
        parse_part10(crash)
    with pytest.raises(InvalidInput, match="no valid value representation"):
        _deidentifier().deidentify_part10(crash)


def test_item_outside_a_sequence_is_refused_and_never_released() -> None:
    # Found by atheris (--target deid): a deletion left an Item (FFFE,E000)
    # holding PatientName at the top level; parse_part10 accepted it, the
    # engine kept it as an "unknown standard" element and the output carried
    # the patient's name in a UN element.
    crash = (CRASHES / "atheris-deid-item-outside-sequence.bin").read_bytes()
    assert b"FUZZ^PATIENT^Q" in crash
    with pytest.raises(InvalidInput, match=r"\(FFFE,E000\) outside a sequence"):
        parse_part10(crash)
    with pytest.raises(InvalidInput, match="outside a sequence"):
        _deidentifier().deidentify_part10(crash)
    # A data set handed to the engine directly (not via bytes) loses it too.
    ds = dcmread(io.BytesIO(crash))
    assert Tag(0xFFFEE000) in ds
    out = _deidentifier().deidentify(ds).dataset
    assert Tag(0xFFFEE000) not in out
    assert not any(b"FUZZ^PATIENT^Q" in (e.value or b"") for e in out if e.VR == "UN")


def test_time_value_that_is_no_time_is_not_released() -> None:
    # Found by atheris (--target deid): StudyTime's length covered the
    # elements after it, so its "value" held PatientName and PatientID; the
    # trial profile keeps times as they are and released them verbatim.
    crash = (CRASHES / "atheris-deid-time-swallows-name.bin").read_bytes()
    assert b"FUZZ^PATIENT^Q" in crash
    out, _ = _deidentifier().deidentify_part10(crash)
    assert b"FUZZ^PATIENT" not in out
    assert b"FZ-778899" not in out
    assert parse_part10(out).dataset.StudyTime == ""
    # A real time is kept as it was.
    for time in ("101500", "1015", "101500.123", "10:15:00"):
        ds = base(1)
        ds.StudyTime = time
        out, _ = _deidentifier().deidentify_part10(write(ds, "1.2.840.10008.1.2.1"))
        assert parse_part10(out).dataset.StudyTime == time


def test_single_binary_number_longer_than_one_value_is_refused() -> None:
    # Found by atheris (--target deid): HighBit (US, VM 1) declared 74 bytes,
    # covering the private elements after it; the engine kept HighBit, and
    # the patient's name inside it, verbatim.
    crash = (CRASHES / "atheris-deid-number-swallows-private.bin").read_bytes()
    with pytest.raises(InvalidInput, match=r"\(0028,0102\) holds 74 bytes; its VR US"):
        parse_part10(crash)
    with pytest.raises(InvalidInput, match="holds 74 bytes"):
        _deidentifier().deidentify_part10(crash)
    # Multi-valued numbers and empty values stay accepted.
    ds = base(1)
    ds.add_new(0x00280034, "IS", "1\\1")  # PixelAspectRatio (IS, VM 2)
    ds.add_new(0x00181310, "US", [0, 4, 4, 0])  # AcquisitionMatrix (US, VM 4)
    ds.add_new(0x00280106, "US", None)  # SmallestImagePixelValue, empty
    parse_part10(write(ds, "1.2.840.10008.1.2.1"))


def test_deid_fast_path_refuses_a_meta_element_of_unknown_vr() -> None:
    # Found by atheris (--target deid): TransferSyntaxUID with VR 'UK'.
    # parse_part10 refuses it, but the de-identification fast path read the
    # meta header by hand, accepted any two upper-case letters as a VR and
    # released a de-identified copy of an instance ingest would refuse.
    crash = (CRASHES / "atheris-deid-meta-vr-uk.bin").read_bytes()
    with pytest.raises(InvalidInput, match=r"Unknown Value Representation 'UK'"):
        parse_part10(crash)
    with pytest.raises(InvalidInput, match=r"Unknown Value Representation 'UK'"):
        _deidentifier().deidentify_part10(crash)


def test_deid_fast_path_refuses_a_meta_element_under_another_vr() -> None:
    # Found by atheris (--target deid): TransferSyntaxUID written with VR UL.
    # parse_part10 (pydicom) reads it as a list of numbers and refuses it;
    # the fast path took its bytes as the UID and de-identified an instance
    # ingest would refuse.
    crash = (CRASHES / "atheris-deid-meta-ts-as-ul.bin").read_bytes()
    assert b"\x02\x00\x10\x00UL" in crash
    with pytest.raises(InvalidInput, match=r"not a UID value \(list\)"):
        parse_part10(crash)
    with pytest.raises(InvalidInput, match=r"not a UID value \(list\)"):
        _deidentifier().deidentify_part10(crash)


def test_patient_id_declared_only_in_items_is_not_released() -> None:
    # Found by atheris (--target deid): the top-level PatientID gone, the ID
    # left in OtherPatientIDsSequence items and copied into an attribute
    # Table E.1-1 does not list; the engine learnt the identity from the top
    # level only. Now items declare it too and kept values are searched.
    crash = (CRASHES / "atheris-deid-id-in-unlisted-attribute.bin").read_bytes()
    source = parse_part10(crash).dataset
    assert "PatientID" not in source
    assert b"FZ-778899" in crash
    out, _ = _deidentifier().deidentify_part10(crash)
    assert b"778899" not in out
    assert b"FUZZ" not in out


def test_identifying_uid_under_another_vr_is_refused() -> None:
    # Found by atheris (--target deid): SOPClassUID written with VR PN.
    # parse_part10 read its text as the UID and accepted the instance;
    # de-identification cleaned it as a name and released a copy without a
    # SOP Class UID that nobody can read.
    crash = (CRASHES / "atheris-deid-sop-class-as-pn.bin").read_bytes()
    assert b"\x08\x00\x16\x00PN" in crash
    refusal = r"SOPClassUID \(0008,0016\) has value representation PN, not UI"
    _refused_by_ingest_and_deid(crash, refusal)


def test_patient_id_in_an_attribute_an_option_keeps_is_not_released() -> None:
    # Found by atheris (--target deid) after the fix above: the ID only in a
    # ContentSequence item, copied into DeviceDescription (0050,0020), which
    # the Retain Device Identity option keeps. Kept values lose the
    # patient's words and keep the rest.
    crash = (CRASHES / "atheris-deid-id-in-device-description.bin").read_bytes()
    source = parse_part10(crash).dataset
    assert "PatientID" not in source
    assert source[0x00500020].value == "FZ-778899"
    out, _ = _deidentifier().deidentify_part10(crash)
    assert b"778899" not in out
    assert parse_part10(out).dataset[0x00500020].value == "[ID]"


def test_identity_in_the_items_of_a_removed_unknown_sequence_counts() -> None:
    # Found by atheris (--target deid) after the fix above: the ID only in
    # the item of a sequence under an unknown tag (0040,A770), removed
    # unread, and in DeviceDescription. Every removed sequence's items are
    # read for identity first.
    crash = (CRASHES / "atheris-deid-id-in-unknown-sequence.bin").read_bytes()
    source = parse_part10(crash).dataset
    assert "PatientID" not in source
    assert source[0x0040A770].VR == "SQ"
    out, _ = _deidentifier().deidentify_part10(crash)
    assert b"778899" not in out


def test_meta_element_of_unknown_vr_is_refused_wherever_it_is() -> None:
    # Found by atheris (--target deid): MediaStorageSOPClassUID with VR 'UY'.
    # parse_part10 only read TransferSyntaxUID and MediaStorageSOPInstanceUID
    # and accepted the file; every later reader of its meta failed.
    crash = (CRASHES / "atheris-deid-meta-class-uid-vr-uy.bin").read_bytes()
    refusal = r"file meta element \(0002,0002\) has an unknown value representation 'UY'"
    _refused_by_ingest_and_deid(crash, refusal)


def test_ae_text_under_a_tag_of_another_vr_loses_the_name() -> None:
    # The same input with its meta repaired (atheris, --target deid): an AE
    # value under the retired UL (0008,0001) held "knee for FUZZ^PATIENT^Q"
    # and was kept (fix 16 cleaned only SH/LO/ST/LT/UT/UC/PN/CS there).
    crash = (CRASHES / "atheris-deid-ae-under-retired-ul.bin").read_bytes()
    assert b"0001AE" in crash.replace(b"\x08\x00\x01\x00", b"0001", 1)
    out, _ = _deidentifier().deidentify_part10(crash)
    assert b"FUZZ" not in out
    assert b"778899" not in out


def test_pixel_data_that_spells_the_id_is_not_dropped() -> None:
    # Found by atheris (--target deid): header bytes copied into an RLE
    # fragment spelled "FZ-778899"; the kept-value search (fix 18) removed
    # the pixel data as bytes holding the ID and released an unreadable
    # copy. Image content is the pixel cleaner's business, not a value.
    crash = (CRASHES / "atheris-deid-id-bytes-in-rle-fragment.bin").read_bytes()
    source = parse_part10(crash).dataset
    assert b"FZ-778899" in source.PixelData
    out, _ = _deidentifier().deidentify_part10(crash)
    assert parse_part10(out).dataset.PixelData == source.PixelData


def test_a_long_identity_value_glued_to_a_word_is_found() -> None:
    # Found by atheris (--target deid): "knee forAFUZZ^PATIENT^Q" (an AE
    # under the retired UL (0008,0001)); the kept-value search matched
    # whole words only. Values of six characters or more match anywhere.
    crash = (CRASHES / "atheris-deid-name-glued-to-a-word.bin").read_bytes()
    assert b"forAFUZZ^PATIENT^Q" in crash
    out, _ = _deidentifier().deidentify_part10(crash)
    assert b"FUZZ^PATIENT" not in out
    assert b"778899" not in out


def test_binary_number_of_broken_length_is_refused_in_implicit_vr() -> None:
    # Found by atheris (--target deid): an implicit VR FL attribute (0024,0010)
    # holding 14 bytes, the patient's name. Nobody can convert it (pydicom
    # raises BytesLengthException), and de-identification kept it.
    crash = (CRASHES / "atheris-deid-fl-holds-the-name.bin").read_bytes()
    refusal = r"\(0024,0010\) holds 14 bytes, not a whole number of FL values"
    _refused_by_ingest_and_deid(crash, refusal)


def test_tm_characters_under_a_tag_of_another_vr_lose_the_name() -> None:
    # Found by atheris (--target deid): "koef ern FUZZ^PATIENT^Q" as a TM
    # under the retired UL (0008,0001); only text VRs were searched there.
    crash = (CRASHES / "atheris-deid-tm-under-retired-ul.bin").read_bytes()
    assert parse_part10(crash).dataset[0x00080001].VR == "TM"
    out, _ = _deidentifier().deidentify_part10(crash)
    assert b"FUZZ^PATIENT" not in out


def test_items_of_a_sequence_written_as_un_are_checked() -> None:
    # Found by atheris (--target deid): ContentSequence written as UN, its
    # item holding an element of unknown VR 'LE'. Only explicit SQ items
    # were checked; de-identification released it as an unreadable SQ.
    crash = (CRASHES / "atheris-deid-un-sequence-item-vr-le.bin").read_bytes()
    assert b"\x40\x00\x30\xa7UN" in crash
    refusal = r"\(0008,0104\) has an unknown value representation 'LE'"
    _refused_by_ingest_and_deid(crash, refusal)


def test_text_under_a_tag_of_another_vr_is_cleaned() -> None:
    # Found by atheris (--target deid, in the CI test): StudyDescription
    # re-tagged as (0008,0001), the retired "Length to End" (UL), which
    # Table E.1-1 does not list: kept verbatim with the patient's name.
    crash = (CRASHES / "atheris-deid-text-under-retired-ul.bin").read_bytes()
    assert b"knee for FUZZ^PATIENT^Q" in crash
    out, _ = _deidentifier().deidentify_part10(crash)
    assert b"FUZZ^PATIENT" not in out
    assert parse_part10(out).dataset[0x00080001].value.startswith("knee for ")


@pytest.mark.parametrize(
    ("level", "params"),
    [
        ("study", [("offset", "9223372036854775808")]),
        ("study", [("limit", "-9223372036854775809")]),
        ("instance", [("InstanceNumber", "99999999999999999999")]),
        ("series", [("SeriesNumber", "1,2147483648")]),
    ],
)
def test_qido_numbers_beyond_the_integer_range_are_refused(
    level: str, params: list[tuple[str, str]]
) -> None:
    # They reached the database and overflowed SQLite's INTEGER: a 500.
    with pytest.raises(InvalidInput, match="out of range"):
        qido.Query.from_params(level, params)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("level", "key"),
    [("study", "StudyInstanceUID"), ("instance", "InstanceNumber"), ("study", "ModalitiesInStudy")],
)
@pytest.mark.parametrize("value", [",", "\\", " , "])
def test_qido_list_without_values_is_refused(level: str, key: str, value: str) -> None:
    # A UID or number list of only separators raised IndexError in search().
    with pytest.raises(InvalidInput, match="holds no value"):
        qido.Query.from_params(level, [(key, value)])  # type: ignore[arg-type]


@pytest.mark.parametrize("path", ["/api/reads/9223372036854775808", "/api/reads/0"])
def test_read_numbers_out_of_range_are_422(tmp_path: Path, path: str) -> None:
    # schemathesis: GET /api/reads/{read} with a huge number overflowed SQLite's
    # INTEGER (OverflowError, a 500).
    archive = Archive.open(Settings(data_dir=tmp_path, pipeline_executor="off"))
    try:
        token = create_key(archive.db, "regression-admin")
        with TestClient(create_app(archive)) as client:
            rsp = client.get(path, headers={"Authorization": f"Bearer {token}"})
            assert rsp.status_code == 422
            post = client.post(
                path + "/sign",
                json={"meaning": "x", "password": "y"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert post.status_code == 422
    finally:
        archive.close()
