"""Parse untrusted Part 10 bytes into a validated instance.

Input is hostile until this module has looked at it: sizes are limited, the
meta header and the identifying UIDs are required and syntax-checked, every
element's declared length is checked against the bytes present (pydicom
silently accepts truncated files), nesting depth is bounded, and the 128-byte
preamble is zeroed (CVE-2019-11687) before anything is stored.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

from pydicom import dcmread
from pydicom.datadict import dictionary_VM, dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.tag import Tag
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian
from pydicom.valuerep import VR

from trialpacs.dicom.uids import require_uid
from trialpacs.errors import InvalidInput, TooLarge

PREAMBLE = b"\x00" * 128
MAX_SEQUENCE_DEPTH = 16
UNDEFINED_LENGTH = 0xFFFFFFFF
# PS3.5 value representations (and pydicom's ambiguous "US or SS" forms).
KNOWN_VRS = frozenset(str(vr) for vr in VR)
_SEQ_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
# Video transfer syntaxes (MPEG-2, MPEG-4 AVC/H.264, HEVC/H.265): one stream,
# whose NumberOfFrames is the playback length (a 5-minute clip at 30 fps has
# 9,000), not frames the server handles one by one; records.video bounds them.
VIDEO_TRANSFER_SYNTAXES = frozenset(
    f"1.2.840.10008.1.2.4.{n}{suffix}" for n in range(100, 109) for suffix in ("", ".1")
) - {"1.2.840.10008.1.2.4.107.1", "1.2.840.10008.1.2.4.108.1"}


@dataclass(frozen=True, slots=True)
class ParsedInstance:
    """A Part 10 instance that passed validation.

    ``data`` is what gets stored: the received bytes with the preamble zeroed.
    """

    data: bytes
    dataset: Dataset
    transfer_syntax: str
    sop_class_uid: str
    sop_instance_uid: str
    study_uid: str
    series_uid: str

    @property
    def size(self) -> int:
        return len(self.data)

    def content_digest(self) -> str:
        """SHA-256 of the data set alone: what "the same instance" means on re-send.

        The file meta header (which names the sender and the writing software)
        and trailing padding (FFFC,FFFC), which senders such as dcmtk drop, are
        not part of the instance's content, so a PACS re-sending what it sent
        before is recognised as a duplicate rather than refused as a conflict.
        """
        start = _dataset_offset(self.data)
        end = len(self.data)
        padding = self.dataset._dict.get(Tag(0xFFFCFFFC))
        if isinstance(padding, RawDataElement) and padding.value_tell:
            header = 8 if padding.is_implicit_VR else 12
            end = min(end, padding.value_tell - header)
        return hashlib.sha256(memoryview(self.data)[start:end]).hexdigest()


def _dataset_offset(data: bytes) -> int:
    """Where the data set starts: after the preamble, DICM and the meta group."""
    # (0002,0000) UL group length is the first meta element: tag, 'UL', 2-byte length, value.
    if data[132:136] == b"\x02\x00\x00\x00" and data[136:138] == b"UL":
        group_length = int.from_bytes(data[140:144], "little")
        return 144 + group_length
    return 132


def parse_part10(
    data: bytes, *, max_bytes: int | None = None, max_frames: int | None = None
) -> ParsedInstance:
    """Validate ``data`` as a DICOM Part 10 file and return it ready to store.

    ``max_bytes`` and ``max_frames`` are the ingest limits (settings
    ``max_instance_bytes`` and ``max_frames``); None means no limit, for
    reading what is already stored.
    """
    if max_bytes is not None and len(data) > max_bytes:
        raise TooLarge(f"instance is {len(data)} bytes; the limit is {max_bytes}")
    if len(data) < 132:
        raise InvalidInput(f"not a DICOM file: only {len(data)} bytes")
    if data[128:132] != b"DICM":
        raise InvalidInput(
            "not a DICOM Part 10 file: no 'DICM' marker at byte 128 "
            "(missing preamble or file meta information)"
        )
    zeroed = PREAMBLE + data[128:]
    try:
        ds = dcmread(io.BytesIO(zeroed), force=False)
    except (InvalidDicomError, EOFError, ValueError, KeyError, NotImplementedError) as exc:
        raise InvalidInput(f"cannot parse DICOM: {exc}") from exc
    except Exception as exc:  # pydicom raises a wide range on hostile input
        raise InvalidInput(f"cannot parse DICOM: {type(exc).__name__}: {exc}") from exc
    meta = ds.file_meta
    for raw in list(meta._dict.values()):
        # Found by atheris (--target deid): MediaStorageSOPClassUID with VR
        # 'UY' was accepted (only the meta elements read later were checked)
        # and stored; every later reader of the file's meta failed on it.
        vr = getattr(raw, "VR", None)
        if vr is not None and vr not in KNOWN_VRS:
            raise InvalidInput(
                f"file meta element {_tag(raw.tag)} has an unknown value representation {vr!r}"
            )
    ts = _meta_value(meta, "TransferSyntaxUID", "(0002,0010)")
    if not ts:
        raise InvalidInput("file meta information has no TransferSyntaxUID (0002,0010)")
    if not isinstance(ts, str):
        # Found by bench/fuzz_atheris_parse.py: a TransferSyntaxUID encoded as
        # a sequence made str() raise NotImplementedError (a 500).
        raise InvalidInput(
            f"TransferSyntaxUID (0002,0010) is not a UID value ({type(ts).__name__})"
        )
    require_uid(str(ts), "TransferSyntaxUID (0002,0010)")
    if not UID(str(ts)).is_transfer_syntax:
        # Found by tests/hardening/test_fuzz.py: pydicom raised ValueError (a 500).
        raise InvalidInput(f"TransferSyntaxUID {ts} (0002,0010) is not a known transfer syntax")
    if len(ds._dict) == 0:
        raise InvalidInput("cannot parse DICOM: no data set after the file meta information")
    if UID(str(ts)).is_compressed and _SEQ_DELIMITER not in zeroed[-(1 << 20) :]:
        raise InvalidInput(
            "encapsulated pixel data is truncated: no sequence delimiter (FFFE,E0DD) at the end"
        )
    # Before check_structure: reading a sequence converts its raw element, and
    # the end of a trailing sequence is only known from the raw one.
    if UID(str(ts)) != DeflatedExplicitVRLittleEndian:
        # A deflated data set is read from the inflated stream, whose offsets
        # say nothing about the received bytes (zlib itself detects truncation).
        _check_consumed(ds, zeroed)
    check_structure(ds)
    parsed = _identify(ds, str(ts), zeroed)
    media_sop = _meta_value(meta, "MediaStorageSOPInstanceUID", "(0002,0003)")
    if media_sop and str(media_sop) != parsed.sop_instance_uid:
        raise InvalidInput(
            f"MediaStorageSOPInstanceUID {media_sop} differs from SOPInstanceUID "
            f"{parsed.sop_instance_uid}"
        )
    if max_frames is not None:
        check_frames(ds, str(ts), max_frames)
    _check_pixel_length(ds, UID(str(ts)))
    return parsed


def check_frames(ds: Dataset, transfer_syntax: str, max_frames: int) -> None:
    """Refuse an instance with more frames than ``max_frames`` (TooLarge).

    Frame-by-frame work (frame retrieval, rendering, OCR of burned-in text)
    grows with the frame count, so an object of 10,000 tiny frames costs far
    more than its byte size says. The count is NumberOfFrames, which is what
    every later step trusts (an unreadable one is refused: it cannot be
    checked). Video transfer syntaxes are exempt (VIDEO_TRANSFER_SYNTAXES).
    """
    if transfer_syntax in VIDEO_TRANSFER_SYNTAXES:
        return
    try:
        raw = ds.get("NumberOfFrames")
    except Exception as exc:
        raise InvalidInput(f"NumberOfFrames (0028,0008) cannot be read: {exc}") from exc
    if raw is None or raw == "":
        return
    try:
        frames = int(raw)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"NumberOfFrames (0028,0008) is not a number: {raw!r}") from exc
    if frames > max_frames:
        raise TooLarge(f"instance has {frames} frames; the limit is {max_frames} (max_frames)")


def _meta_value(meta: FileMetaDataset, keyword: str, tag: str) -> object:
    """A meta element's value; a corrupt one (e.g. an unknown VR, which pydicom
    raises NotImplementedError for, found by the fuzzer) is refused by name."""
    try:
        return meta.get(keyword)
    except Exception as exc:
        raise InvalidInput(f"file meta element {keyword} {tag} cannot be read: {exc}") from exc


_IDENTIFYING_UIDS = (
    (0x00080016, "SOPClassUID (0008,0016)"),
    (0x00080018, "SOPInstanceUID (0008,0018)"),
    (0x0020000D, "StudyInstanceUID (0020,000D)"),
    (0x0020000E, "SeriesInstanceUID (0020,000E)"),
)


def _identify(ds: Dataset, ts: str, data: bytes) -> ParsedInstance:
    for tag, what in _IDENTIFYING_UIDS:
        # Found by atheris (--target deid): SOPClassUID written with VR PN was
        # read as its text, and de-identification cleaned it as a name: an
        # unreadable copy. A UID is UI (or UN, which any element may be).
        raw = ds._dict.get(tag)  # type: ignore[call-overload]
        vr = getattr(raw, "VR", None)
        if vr not in (None, "UI", "UN"):
            raise InvalidInput(f"{what} has value representation {vr}, not UI")
    try:
        sop_class = ds.get("SOPClassUID")
        sop_instance = ds.get("SOPInstanceUID")
        study = ds.get("StudyInstanceUID")
        series = ds.get("SeriesInstanceUID")
    except Exception as exc:
        raise InvalidInput(f"cannot read the identifying UIDs: {exc}") from exc
    return ParsedInstance(
        data=data,
        dataset=ds,
        transfer_syntax=ts,
        sop_class_uid=require_uid(_text(sop_class), "SOPClassUID (0008,0016)"),
        sop_instance_uid=require_uid(_text(sop_instance), "SOPInstanceUID (0008,0018)"),
        study_uid=require_uid(_text(study), "StudyInstanceUID (0020,000D)"),
        series_uid=require_uid(_text(series), "SeriesInstanceUID (0020,000E)"),
    )


def _text(value: object) -> str | None:
    if value is None:
        return None
    return str(value).strip("\x00 ")


def check_structure(ds: Dataset, depth: int = 0) -> None:
    """Raise InvalidInput on truncated values or sequences nested too deep."""
    if depth > MAX_SEQUENCE_DEPTH:
        raise InvalidInput(f"sequences nested deeper than {MAX_SEQUENCE_DEPTH} levels")
    for tag in list(ds.keys()):
        if tag >> 16 == 0xFFFE:
            # Found by atheris (--target deid): an Item (FFFE,E000) outside a
            # sequence read as an element of "unknown" VR that de-identification
            # kept, with the patient's name inside, as UN in the output.
            raise InvalidInput(
                f"item or delimitation tag {_tag(tag)} outside a sequence (PS3.5 7.5)"
            )
        raw = ds._dict[tag]
        if isinstance(raw, RawDataElement):
            if raw.VR is None and not raw.is_implicit_VR:
                # Explicit VR, but pydicom found no VR it knows there and read
                # the element as implicit VR (found by atheris: a private
                # (0013,FFFF) of undefined length swallowed the pixel data).
                raise InvalidInput(
                    f"element {_tag(tag)} has no valid value representation in an "
                    "explicit VR data set"
                )
            if raw.VR is not None and raw.VR not in KNOWN_VRS:
                # Found by atheris (bench/fuzz_atheris.py --target deid): pydicom
                # reads an explicit VR it does not know, but no one can convert
                # or re-encode the value (the de-identified copy was unreadable).
                raise InvalidInput(
                    f"element {_tag(tag)} has an unknown value representation {raw.VR!r}"
                )
            if raw.length == UNDEFINED_LENGTH and not _may_be_undefined(tag, raw.VR):
                # Found by atheris (--target deid): an IS of undefined length
                # swallowed the elements after it up to a sequence delimiter;
                # its de-identified copy was written with a 16-bit length
                # and was unreadable.
                raise InvalidInput(
                    f"element {_tag(tag)} ({raw.VR or 'implicit VR'}) has an undefined "
                    "length; only sequences and encapsulated pixel data may (PS3.5 7.1)"
                )
            if (
                raw.length != UNDEFINED_LENGTH
                and raw.value is not None
                and len(raw.value) != raw.length
            ):
                raise InvalidInput(
                    f"element {_tag(tag)} is truncated: declared {raw.length} bytes, "
                    f"found {len(raw.value)}"
                )
            _check_fixed_size(tag, raw)
            if raw.VR != "SQ" and not _read_as_sequence(tag, raw):
                continue
        try:
            elem = ds[tag]
        except Exception as exc:
            raise InvalidInput(f"element {_tag(tag)} cannot be read: {exc}") from exc
        if elem.VR == "SQ":
            for item in elem.value:
                check_structure(item, depth + 1)


def _read_as_sequence(tag: int, raw: RawDataElement) -> bool:
    """A sequence written as UN or in implicit VR: its items are checked too.

    Found by atheris (--target deid): a ContentSequence written as UN held an
    item element of unknown VR 'LE'; only explicit SQ items were checked, and
    de-identification released the sequence, 'LE' and all, as an SQ nobody
    could read.
    """
    if raw.VR not in (None, "UN"):
        return False
    if raw.length == UNDEFINED_LENGTH:
        return True
    try:
        return bool(dictionary_VR(tag) == "SQ")
    except KeyError:
        return False


_FIXED_SIZE = {"US": 2, "SS": 2, "UL": 4, "SL": 4, "FL": 4, "FD": 8, "AT": 4}


def _check_fixed_size(tag: int, raw: RawDataElement) -> None:
    """A binary number's length must be a whole number of values, one for VM 1.

    Found by atheris (--target deid): HighBit (US, VM 1) declared 74 bytes,
    covering the private elements after it (the patient's name among them),
    and de-identification kept it, and them, verbatim. Later: an implicit VR
    FL attribute holding 14 bytes (the patient's name) was accepted, and no
    reader could convert it.
    """
    if tag & 0x10000 or raw.length in (0, UNDEFINED_LENGTH):
        return
    vr = raw.VR
    if vr is None:  # implicit VR: the dictionary's, when it names one fixed-size VR
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            return
    size = _FIXED_SIZE.get(str(vr))
    if size is None or raw.length == size:
        return
    if raw.length % size:
        raise InvalidInput(
            f"element {_tag(tag)} holds {raw.length} bytes, not a whole number of "
            f"{vr} values ({size} bytes each)"
        )
    try:
        vm = dictionary_VM(tag)
    except KeyError:
        return
    if vm == "1":
        raise InvalidInput(
            f"element {_tag(tag)} holds {raw.length} bytes; its VR {vr} with one value takes {size}"
        )


def _may_be_undefined(tag: int, vr: str | None) -> bool:
    """PS3.5 7.1: sequences (also as UN) and encapsulated pixel data only.

    ``vr`` is None for implicit VR (and where pydicom fell back to it for an
    unreadable explicit VR): then the dictionary decides, and a private tag
    it does not know may be a sequence, except in groups PS3.5 7.8.1 forbids
    (found by atheris: (FFFF,FFFF) of undefined length swallowed the pixel
    data, and the de-identified copy had none).
    """
    if vr in ("SQ", "UN"):
        return True
    if tag == 0x7FE00010:
        return vr in (None, "OB", "OW", "OB or OW")
    if vr is not None or (tag >> 16) in _FORBIDDEN_GROUPS:
        return False
    try:
        return bool(dictionary_VR(tag) == "SQ")
    except KeyError:
        # Only a private tag can be a sequence the dictionary does not know
        # (found by atheris: (0028,FF02) swallowed the RLE pixel data too).
        return bool(tag & 0x10000)


_FORBIDDEN_GROUPS = frozenset({0x0001, 0x0003, 0x0005, 0x0007, 0xFFFF})


def _check_consumed(ds: Dataset, data: bytes) -> None:
    """Refuse bytes left after the last element (a truncated element header).

    pydicom stops silently when fewer bytes remain than an element header
    needs, so a file cut inside the header of its last element (typically the
    pixel data) would otherwise parse as a complete file without pixels.
    """
    end = 0
    for raw in ds._dict.values():
        if not isinstance(raw, RawDataElement):
            continue
        if raw.length == UNDEFINED_LENGTH:
            return  # sequences and encapsulated pixel data end with a delimiter
        end = max(end, raw.value_tell + raw.length)
    if end and end < len(data) and data[end:].strip(b"\x00"):
        raise InvalidInput(
            f"{len(data) - end} unreadable byte(s) after the last element "
            "(the file is truncated inside an element header)"
        )


def _tag(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _check_pixel_length(ds: Dataset, ts: UID) -> None:
    if "PixelData" not in ds or ts.is_compressed:
        return
    try:
        rows = int(ds.Rows)
        cols = int(ds.Columns)
        bits = int(ds.BitsAllocated)
        spp = int(ds.get("SamplesPerPixel", 1) or 1)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (AttributeError, TypeError, ValueError) as exc:
        raise InvalidInput(f"pixel data without a readable image description: {exc}") from exc
    pixels = rows * cols * spp * frames
    expected = (pixels + 7) // 8 if bits == 1 else pixels * (bits // 8)
    actual = len(ds._dict[Tag(0x7FE00010)].value or b"")
    if actual < expected:
        raise InvalidInput(
            f"pixel data is truncated: {actual} bytes for {frames} frame(s) of "
            f"{rows}x{cols}x{spp} at {bits} bits ({expected} expected)"
        )


def write_part10(ds: Dataset, transfer_syntax: str | None = None) -> bytes:
    """Encode a dataset as Part 10 with a fresh meta header and a zero preamble."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = UID(
        transfer_syntax
        or str(getattr(ds, "file_meta", {}).get("TransferSyntaxUID", "1.2.840.10008.1.2.1"))
    )
    ds.file_meta = meta
    buf = io.BytesIO()
    ds.save_as(
        buf,
        enforce_file_format=True,
        implicit_vr=meta.TransferSyntaxUID.is_implicit_VR,
        little_endian=meta.TransferSyntaxUID.is_little_endian,
    )
    out = buf.getvalue()
    return PREAMBLE + out[128:]
