"""HL7 and FHIR messages in a Basic Text SR: one line per segment / JSON line for a
viewer, and the download is still the de-identified message byte for byte."""

from __future__ import annotations

import io
import json
import random

from evaluate import deidentifier, run
from labelled_records import fhir_bundle, hl7, person
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from trialpacs.records import dicomwrap as wrap
from trialpacs.records import hl7v2
from trialpacs.records.formats import RecordFormat


def _source_value(dicom: bytes) -> str:
    """The TEXT value a viewer (OHIF's SR viewport) is given for 'Source message'."""
    ds = dcmread(io.BytesIO(dicom))
    for item in ds.ContentSequence:
        if item.ConceptNameCodeSequence[0].CodeValue == wrap.SOURCE_CODE[0]:
            return str(item.TextValue)
    raise AssertionError("no Source message item")


def test_hl7_segments_are_lines_in_the_sr_and_the_download_is_er7() -> None:
    p = person(random.Random(31))
    out = run(hl7(p, random.Random(31)), deidentifier())
    shown = _source_value(out.dicom)
    lines = shown.split("\r\n")
    assert lines[-1] == ""  # the message ends with its last segment's terminator
    ids = [line.split("|")[0] for line in lines[:-1]]
    assert ids[0] == "MSH" and "PID" in ids and "OBX" in ids, ids
    assert all(len(i) == 3 and i.isalnum() for i in ids), ids
    assert "\r" not in "".join(lines) and "\n" not in "".join(lines)  # no lone CR left
    # the download: ER7 with CR segment terminators, as the de-identifier wrote it
    message = out.data.decode()
    assert b"\n" not in out.data and message.endswith("\r")
    assert message == hl7v2.parse(message).to_text()
    assert message.replace("\r", "\r\n") == shown
    assert out.subject in message


def test_fhir_json_keeps_its_indentation_in_the_sr_and_the_download_is_json() -> None:
    p = person(random.Random(32))
    out = run(fhir_bundle(p, random.Random(32)), deidentifier())
    shown = _source_value(out.dicom)
    lines = shown.split("\n")
    indented = [line for line in lines if line.startswith(wrap.NBSP)]
    assert len(indented) > 10 and not any(line.startswith(" ") for line in lines)
    # nesting is visible: deeper elements start with more no-break spaces
    depth = {len(line) - len(line.lstrip(wrap.NBSP)) for line in indented}
    assert {2, 4, 6} <= depth, depth
    message = out.data.decode()
    assert wrap.NBSP not in message
    doc = json.loads(message)
    assert message == json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    assert doc["entry"][0]["resource"]["identifier"][0]["value"] == out.subject


def test_an_sr_written_before_the_layout_change_downloads_unchanged() -> None:
    """SRs already published hold the ER7 message with lone CRs: read as they are."""
    ds = Dataset()
    message = "MSH|^~\\&|A|S01|||20240101||ORU^R01|DEID|P|2.5\rPID|1||S01-0001^^^ONCO1\r"
    ds.ContentSequence = DicomSequence(
        [
            wrap._text_item(wrap.TEXT_CODE, "report"),
            wrap._text_item(wrap.SOURCE_CODE, message),
            wrap._text_item(wrap.FORMAT_CODE, RecordFormat.HL7V2.value),
        ]
    )
    assert wrap.sr_texts(ds)[wrap.SOURCE_CODE[0]] == message
    for fmt in (RecordFormat.HL7V2, RecordFormat.FHIR):
        value = wrap.source_text_value(fmt, message)
        assert wrap.source_message(fmt, value) == message
