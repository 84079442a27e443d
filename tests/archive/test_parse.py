"""What ingest refuses, and the message that says why."""

from __future__ import annotations

from pathlib import Path

import pytest

from dicomfactory import make_bytes, make_dataset, to_bytes
from trialpacs.dicom.parse import parse_part10
from trialpacs.errors import InvalidInput, TooLarge


def test_every_corpus_file_parses(testdata_files: list[Path]) -> None:
    assert len(testdata_files) >= 50
    for path in testdata_files:
        parsed = parse_part10(path.read_bytes())
        assert parsed.data[:128] == b"\x00" * 128
        assert parsed.sop_instance_uid


def test_preamble_is_zeroed() -> None:
    data = make_bytes()
    assert data[:128] == b"\xff" * 128
    parsed = parse_part10(data)
    assert parsed.data[:128] == b"\x00" * 128
    assert parsed.data[128:] == data[128:]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "only 0 bytes"),
        (b"hello world" * 20, "no 'DICM' marker"),
        (b"\x00" * 128 + b"DICM", "cannot parse|TransferSyntaxUID"),
    ],
)
def test_non_dicom_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_part10(data)


def test_missing_meta_header_is_refused() -> None:
    data = make_bytes()
    raw_dataset = data[132:]
    with pytest.raises(InvalidInput, match="DICM"):
        parse_part10(raw_dataset)


def test_truncated_pixel_data_is_refused(testdata: Path) -> None:
    data = (testdata / "ct" / "CT1_UNC.dcm").read_bytes()
    with pytest.raises(InvalidInput, match=r"\(7FE0,0010\) is truncated"):
        parse_part10(data[: len(data) // 2])


def test_truncated_header_is_refused(testdata: Path) -> None:
    data = (testdata / "ct" / "CT1_UNC.dcm").read_bytes()
    with pytest.raises(InvalidInput, match="truncated"):
        parse_part10(data[:1000])


def test_truncated_compressed_file_is_refused(testdata: Path) -> None:
    data = (testdata / "cr" / "RG3_J2KR.dcm").read_bytes()
    with pytest.raises(InvalidInput):
        parse_part10(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("SOPInstanceUID", "1.2.abc", "not a valid UID"),
        ("StudyInstanceUID", "1." + "2" * 70, "at most 64"),
        ("SeriesInstanceUID", "../../etc/passwd", "not a valid UID"),
    ],
)
def test_invalid_uids_are_refused(field: str, value: str, message: str) -> None:
    ds = make_dataset()
    setattr(ds, field, value)
    with pytest.raises(InvalidInput, match=message):
        parse_part10(to_bytes(ds))


def test_missing_sop_class_is_refused() -> None:
    ds = make_dataset()
    del ds.SOPClassUID
    data = to_bytes_without_class(ds)
    with pytest.raises(InvalidInput, match="SOPClassUID"):
        parse_part10(data)


def to_bytes_without_class(ds):  # type: ignore[no-untyped-def]
    import io

    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def test_size_limit() -> None:
    data = make_bytes()
    with pytest.raises(TooLarge, match="limit"):
        parse_part10(data, max_bytes=100)


def test_deeply_nested_sequences_are_refused() -> None:
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds = make_dataset()
    inner = Dataset()
    inner.CodeValue = "X"
    for _ in range(40):
        wrapper = Dataset()
        wrapper.ContentSequence = Sequence([inner])
        inner = wrapper
    ds.ContentSequence = Sequence([inner])
    with pytest.raises(InvalidInput, match="nested deeper"):
        parse_part10(to_bytes(ds))


@pytest.mark.parametrize("into_header", [2, 6])
def test_cut_inside_last_element_header_is_refused(testdata: Path, into_header: int) -> None:
    data = (testdata / "mr-brain" / "MR4_UNC.dcm").read_bytes()
    pixel_tag = data.rfind(b"\xe0\x7f\x10\x00")
    with pytest.raises(InvalidInput, match="truncated inside an element header"):
        parse_part10(data[: pixel_tag + into_header])


def test_content_digest_ignores_meta_header_and_trailing_padding(testdata: Path) -> None:
    import io

    import pydicom

    data = (testdata / "ct" / "CT1_UNC.dcm").read_bytes()
    ds = pydicom.dcmread(io.BytesIO(data))
    assert "DataSetTrailingPadding" in ds
    del ds.DataSetTrailingPadding
    ds.file_meta.SourceApplicationEntityTitle = "OTHERPACS"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    resent = parse_part10(buf.getvalue())
    original = parse_part10(data)
    assert resent.data != original.data
    assert resent.content_digest() == original.content_digest()
    changed = make_dataset(value=1)
    other = make_dataset(
        sop=changed.SOPInstanceUID,
        study=changed.StudyInstanceUID,
        series=changed.SeriesInstanceUID,
        value=2,
    )
    assert (
        parse_part10(to_bytes(changed)).content_digest()
        != parse_part10(to_bytes(other)).content_digest()
    )
