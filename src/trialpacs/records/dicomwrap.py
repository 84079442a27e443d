"""Records as DICOM objects: wrap at intake, take the payload out and put it back.

* PDF: Encapsulated PDF Storage, the file in EncapsulatedDocument;
* text, HL7 v2, FHIR: Basic Text SR Storage, a CONTAINER with TEXT items
  (the report text, the source message, its format);
* MP4/MOV video: Video Endoscopic (ES) or Video Photographic (XC, the
  default), Pixel Data an H.264 elementary stream (MPEG-4 AVC High 4.1).

The SR keeps the whole source message (HL7 ER7 or FHIR JSON) in a TEXT
item coded ``99TRIALPACS SRCMSG``, with its format in ``SRCFMT``, so the
original format can be downloaded from the published object itself.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_fragments
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from trialpacs.dicom.parse import write_part10
from trialpacs.errors import InvalidInput
from trialpacs.records.formats import RecordFormat
from trialpacs.records.identity import PatientIdentity

ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
ENHANCED_SR = "1.2.840.10008.5.1.4.1.1.88.22"
VIDEO_ENDOSCOPIC = "1.2.840.10008.5.1.4.1.1.77.1.1.1"
VIDEO_MICROSCOPIC = "1.2.840.10008.5.1.4.1.1.77.1.2.1"
VIDEO_PHOTOGRAPHIC = "1.2.840.10008.5.1.4.1.1.77.1.4.1"
VIDEO_CLASSES = frozenset({VIDEO_ENDOSCOPIC, VIDEO_MICROSCOPIC, VIDEO_PHOTOGRAPHIC})
SR_CLASSES = frozenset({BASIC_TEXT_SR, ENHANCED_SR})
RECORD_CLASSES = frozenset({ENCAPSULATED_PDF}) | SR_CLASSES | VIDEO_CLASSES
H264_HIGH_41 = "1.2.840.10008.1.2.4.102"
SCHEME = "99TRIALPACS"
REPORT_CODE = ("121070", "DCM", "Findings")
TEXT_CODE = ("121071", "DCM", "Finding")
SOURCE_CODE = ("SRCMSG", SCHEME, "Source message")
FORMAT_CODE = ("SRCFMT", SCHEME, "Source message format")
TITLE_CODE = ("18748-4", "LN", "Diagnostic imaging report")


@dataclass(frozen=True)
class WrapInfo:
    """Where the record belongs; identifying, so it stays in quarantine."""

    patient: PatientIdentity
    study_uid: str = ""
    time_point: str = ""
    description: str = ""
    content_date: str = ""  # YYYYMMDD of the record (today when unknown)
    modality: str = ""  # ES, XC, GM for videos


def _code(code: tuple[str, str, str]) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code
    return item


def _base(info: WrapInfo, sop_class: str, modality: str, series_description: str) -> Dataset:
    now = dt.datetime.now(dt.UTC)
    date = info.content_date or now.strftime("%Y%m%d")
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = UID(sop_class)
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = info.study_uid or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    p = info.patient
    ds.PatientName = p.name
    ds.PatientID = p.patient_id
    if p.issuer:
        ds.IssuerOfPatientID = p.issuer
    ds.PatientBirthDate = p.birth_date
    ds.PatientSex = p.sex
    ds.StudyDate = date
    ds.StudyTime = "000000"
    ds.ContentDate = date
    ds.ContentTime = "000000"
    ds.InstanceCreationDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = now.strftime("%H%M%S")
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.StudyID = ""
    ds.Modality = modality
    ds.SeriesNumber = 900
    ds.InstanceNumber = 1
    ds.Manufacturer = "trialpacs"
    ds.StudyDescription = info.description[:64]
    ds.SeriesDescription = series_description
    if info.time_point:
        ds.ClinicalTrialTimePointID = info.time_point[:64]
    return ds


def _finish(ds: Dataset, ts: str = ExplicitVRLittleEndian) -> bytes:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID(ts)
    return write_part10(ds, ts)


def wrap_pdf(pdf: bytes, info: WrapInfo) -> bytes:
    ds = _base(info, ENCAPSULATED_PDF, "DOC", "Records: PDF")
    ds.ConversionType = "WSD"
    ds.BurnedInAnnotation = "YES"  # a report's text is its content: cleaned by records.pdf
    ds.DocumentTitle = ""
    ds.ConceptNameCodeSequence = DicomSequence([])
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = pdf + (b"\x00" if len(pdf) % 2 else b"")
    ds.EncapsulatedDocumentLength = len(pdf)
    return _finish(ds)


def _text_item(code: tuple[str, str, str], text: str) -> Dataset:
    item = Dataset()
    item.RelationshipType = "CONTAINS"
    item.ValueType = "TEXT"
    item.ConceptNameCodeSequence = DicomSequence([_code(code)])
    item.TextValue = text
    return item


NBSP = "\u00a0"
_INDENT = re.compile(r"^( +)", re.MULTILINE)
_NBSP_INDENT = re.compile(rf"^({NBSP}+)", re.MULTILINE)


def source_text_value(fmt: RecordFormat, source: str) -> str:
    """The source message as the SR's TEXT value: laid out for a viewer, losslessly.

    Viewers draw a TEXT value as HTML text with line feeds kept and runs of
    spaces collapsed (OHIF's SR viewport: CSS ``white-space: pre-line``).
    HL7 ER7 ends each segment with a lone CR, which no viewer draws as a line
    break (CSS treats CR as a space), so the segments ran together: in the SR
    each CR becomes CR LF (the line break of DICOM text values). FHIR JSON
    (pretty-printed) keeps its lines but would lose its indentation: leading
    spaces become no-break spaces, which are not collapsed (a JSON line
    cannot start with one, so this is reversible). :func:`source_message`
    undoes both, so the download is the message byte for byte.
    """
    if fmt is RecordFormat.HL7V2 and "\n" not in source:
        return source.replace("\r", "\r\n")
    if fmt is RecordFormat.FHIR:
        return _INDENT.sub(lambda m: NBSP * len(m.group(1)), source)
    return source


def source_message(fmt: RecordFormat, value: str) -> str:
    """The source message out of its TEXT value (inverse of :func:`source_text_value`)."""
    if fmt is RecordFormat.HL7V2:
        return value.replace("\r\n", "\r")
    if fmt is RecordFormat.FHIR:
        return _NBSP_INDENT.sub(lambda m: " " * len(m.group(1)), value)
    return value


def sr_content(report: str, source: str, fmt: RecordFormat) -> DicomSequence:
    items = [_text_item(TEXT_CODE, report)]
    if fmt is not RecordFormat.TEXT:
        items.append(_text_item(SOURCE_CODE, source_text_value(fmt, source)))
    items.append(_text_item(FORMAT_CODE, fmt.value))
    return DicomSequence(items)


def wrap_text(report: str, source: str, fmt: RecordFormat, info: WrapInfo) -> bytes:
    label = {RecordFormat.HL7V2: "HL7 v2", RecordFormat.FHIR: "FHIR R4"}.get(fmt, "text")
    ds = _base(info, BASIC_TEXT_SR, "SR", f"Records: {label}")
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    ds.ConceptNameCodeSequence = DicomSequence([_code(TITLE_CODE)])
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    ds.ReferencedPerformedProcedureStepSequence = DicomSequence([])
    ds.PerformedProcedureCodeSequence = DicomSequence([])
    ds.ContentTemplateSequence = DicomSequence([])
    ds.ContentSequence = sr_content(report, source, fmt)
    return _finish(ds)


def video_pixels(
    ds: Dataset, stream: bytes, width: int, height: int, frames: int, fps: Fraction
) -> None:
    """Put an H.264 stream into ``ds`` as MPEG-4 AVC High 4.1 Pixel Data."""
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "YBR_PARTIAL_420"
    ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = height, width
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelRepresentation = 0
    ds.NumberOfFrames = frames
    ds.FrameIncrementPointer = 0x00181063  # Frame Time
    ds.FrameTime = f"{1000 / float(fps):.4f}"[:16] if fps else "40"
    ds.CineRate = round(float(fps)) if fps else 25
    ds.LossyImageCompression = "01"
    ds.PixelData = encapsulate([stream])
    ds["PixelData"].VR = "OB"
    if getattr(ds, "file_meta", None) is None:
        ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID(H264_HIGH_41)


def wrap_video(
    stream: bytes, width: int, height: int, frames: int, fps: Fraction, info: WrapInfo
) -> bytes:
    """``stream``: an H.264 elementary stream (the intake re-encodes other codecs)."""
    modality = info.modality or "XC"
    sop = {"ES": VIDEO_ENDOSCOPIC, "GM": VIDEO_MICROSCOPIC}.get(modality, VIDEO_PHOTOGRAPHIC)
    ds = _base(info, sop, modality, "Records: video")
    ds.BurnedInAnnotation = "YES"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.AcquisitionContextSequence = DicomSequence([])
    ds.AnatomicRegionSequence = DicomSequence([])
    video_pixels(ds, stream, width, height, frames, fps)
    return _finish(ds, H264_HIGH_41)


# ------------------------------------------------------------ reading back


def sr_texts(ds: Dataset) -> dict[str, str]:
    """Code value -> text of the SR's top-level TEXT items; the source message as it came."""
    out: dict[str, str] = {}
    for item in ds.get("ContentSequence", []):
        if item.get("ValueType") != "TEXT":
            continue
        codes = item.get("ConceptNameCodeSequence") or []
        if codes:
            out.setdefault(str(codes[0].CodeValue), str(item.get("TextValue", "")))
    if SOURCE_CODE[0] in out:
        try:
            fmt = RecordFormat(out.get(FORMAT_CODE[0], ""))
        except ValueError:
            fmt = RecordFormat.TEXT
        out[SOURCE_CODE[0]] = source_message(fmt, out[SOURCE_CODE[0]])
    return out


def video_stream(ds: Dataset) -> bytes:
    """The elementary stream of an encapsulated video (all fragments joined)."""
    raw = ds.get("PixelData")
    if raw is None:
        raise InvalidInput("video object has no Pixel Data")
    data = bytes(ds.PixelData)
    frags: Sequence[bytes] = list(
        generate_fragments(data[8 + int.from_bytes(data[4:8], "little") :])
    )
    return b"".join(frags)


def encapsulated_document(ds: Dataset) -> bytes:
    doc = bytes(ds.get("EncapsulatedDocument", b"") or b"")
    length = ds.get("EncapsulatedDocumentLength")
    if length is not None and 0 < int(length) <= len(doc):
        doc = doc[: int(length)]
    elif doc.endswith(b"\x00") and doc.rstrip(b"\x00").endswith(b"%%EOF") is not False:
        doc = doc[:-1]
    return doc
