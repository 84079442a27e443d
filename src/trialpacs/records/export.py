"""The original format of a (published) record, for download."""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset

from trialpacs.errors import InvalidInput
from trialpacs.records import dicomwrap as wrap
from trialpacs.records import video
from trialpacs.records.deidentify import _fps, is_record, kind
from trialpacs.records.formats import EXTENSIONS, MEDIA_TYPES, RecordFormat


@dataclass(frozen=True)
class Original:
    data: bytes
    media_type: str
    filename: str
    format: RecordFormat


def original_format(ds: Dataset) -> Original:
    """PDF, HL7 ER7, FHIR JSON, plain text or MP4 out of a record's DICOM object."""
    if not is_record(ds):
        raise InvalidInput("this instance is not a record (PDF, report or video)")
    fmt = kind(ds)
    if fmt is RecordFormat.PDF:
        data = wrap.encapsulated_document(ds)
    elif fmt is RecordFormat.VIDEO:
        ts = str(ds.file_meta.TransferSyntaxUID)
        stream_fmt = video.DICOM_STREAM_FORMATS.get(ts, "h264")
        data = video.to_mp4(
            wrap.video_stream(ds),
            _fps(ds) or video.probe(wrap.video_stream(ds), stream_fmt)[2],
            stream_fmt,
        )
    else:
        texts = wrap.sr_texts(ds)
        data = (texts.get(wrap.SOURCE_CODE[0]) or texts.get(wrap.TEXT_CODE[0], "")).encode()
    name = f"{ds.get('PatientID', 'record')}-{str(ds.SOPInstanceUID)[-12:]}{EXTENSIONS[fmt]}"
    return Original(data, MEDIA_TYPES[fmt], name, fmt)
