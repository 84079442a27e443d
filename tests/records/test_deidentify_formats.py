"""Each record format through its DICOM wrapper and the trial's engine: what a reviewer sees."""

from __future__ import annotations

import io
import json
import random
import zlib

import pikepdf
import pytest
from evaluate import deidentifier, run, video_legible
from labelled_records import (
    fhir_bundle,
    hl7,
    inline_image_pdf,
    person,
    scanned_pdf,
    text_pdf,
    type3_pdf,
    video_clip,
)
from pydicom import dcmread

from dicomfactory import make_dataset
from trialpacs.deid.engine import DeidError
from trialpacs.errors import InvalidInput
from trialpacs.records import hl7v2
from trialpacs.records.formats import RecordFormat, detect_format
from trialpacs.records.intake import Intake, wrap_record
from trialpacs.records.pdf import extract_text as pdf_text_layer


def _rng(seed: int = 5) -> random.Random:
    return random.Random(seed)


def _all_stream_bytes(data: bytes) -> bytes:
    """Every decoded stream and string of the PDF: the text must be gone, not hidden."""
    doc = pikepdf.open(io.BytesIO(data))
    out = [data]
    for obj in doc.objects:
        if isinstance(obj, pikepdf.Stream):
            try:
                out.append(obj.read_bytes())
            except pikepdf.PdfError:
                out.append(zlib.decompress(obj.read_raw_bytes()))
    return b"\n".join(out)


def test_pdf_text_layer_no_longer_holds_the_phi() -> None:
    item = text_pdf(person(_rng()), _rng())
    out = run(item, deidentifier())
    assert set(out.left()) <= set(item.hard), out.text
    assert sorted(out.kept()) == sorted(item.keep)  # clinical text untouched
    raw = _all_stream_bytes(out.data)
    p = item.patient
    for secret in (p.patient_id.encode(), item.phi[0].split()[1].encode()):
        assert secret not in raw  # removed from the content stream, not covered
    assert out.subject.encode() in raw  # the replacement names the subject
    doc = pikepdf.open(io.BytesIO(out.data))
    assert "/Info" not in doc.trailer and "/Metadata" not in doc.Root
    assert dict(doc.docinfo) == {}


def test_scanned_pdf_page_is_masked_where_phi_was() -> None:
    item = scanned_pdf(person(_rng(7)), _rng(7))
    out = run(item, deidentifier())
    assert set(out.left()) <= set(item.hard), out.text
    assert out.kept(), "the clinical lines of the scan must stay legible"


def test_inline_image_is_masked_and_the_rest_of_the_page_unchanged() -> None:
    item = inline_image_pdf(person(_rng(11)), _rng(11))
    out = run(item, deidentifier())  # out.text: text layer + OCR of every image, inline too
    assert set(out.left()) <= set(item.hard), out.text
    assert out.kept(), "the clinical lines of the pasted report must stay legible"
    doc = pikepdf.open(io.BytesIO(out.data))
    ops = pikepdf.parse_content_stream(doc.pages[0])
    assert not any(isinstance(op, pikepdf.ContentStreamInlineImage) for op in ops)
    original = pikepdf.open(io.BytesIO(item.data))
    before = pikepdf.parse_content_stream(original.pages[0])
    at = [i for i, op in enumerate(before) if isinstance(op, pikepdf.ContentStreamInlineImage)]
    assert len(at) == 1 and len(ops) == len(before)
    assert str(ops[at[0]].operator) == "Do"  # drawn in the same place, same matrix
    for i, (a, b) in enumerate(zip(before, ops, strict=True)):
        if i != at[0]:
            assert a.operator == b.operator and list(a.operands) == list(b.operands)
    assert "Clinical summary attached below." in out.text


def test_type3_font_text_is_removed_from_the_content_stream() -> None:
    item = type3_pdf(person(_rng(13)), _rng(13), decodable=True)
    out = run(item, deidentifier())
    assert set(out.left()) <= set(item.hard), out.text
    assert sorted(out.kept()) == sorted(item.keep)
    raw = _all_stream_bytes(out.data)
    assert item.patient.patient_id.encode() not in raw  # glyph codes gone, not covered
    doc = pikepdf.open(io.BytesIO(out.data))
    assert doc.pages[0].Resources.Font.F3.Subtype == "/Type3"  # still text, not an image


def test_type3_font_without_unicode_mapping_is_rasterised_and_masked() -> None:
    item = type3_pdf(person(_rng(17)), _rng(17), decodable=False)
    deid = deidentifier()
    _, wrapped = wrap_record(item.data, "r.pdf", Intake(patient=item.patient))
    result = deid.deidentify(dcmread(io.BytesIO(wrapped)))
    assert any("1 page(s) rasterised" in n for n in result.notes), result.notes
    out = run(item, deid)  # text layer (none left) + OCR of the page image
    assert pdf_text_layer(out.data).strip() == ""
    assert set(out.left()) <= set(item.hard), out.text
    assert out.kept(), "the clinical lines must stay legible on the rasterised page"
    doc = pikepdf.open(io.BytesIO(out.data))
    page = doc.pages[0]
    assert "/Font" not in page.Resources and list(page.Resources.XObject.keys()) == ["/TPPage"]


def test_hl7_identifiers_gone_dates_shifted_like_the_images() -> None:
    p = person(_rng(9))
    item = hl7(p, _rng(9))
    deid = deidentifier()
    image = make_dataset(patient_name=p.dicom_name, patient_id=p.mrn, study_date="20240305")
    image_result = deid.deidentify(image)
    out = run(item, deid)
    assert set(out.left()) <= set(item.hard), out.text
    assert out.subject == image_result.subject_id
    msg = hl7v2.parse(out.text)
    pid = msg.segment("PID")
    assert pid is not None
    assert msg.field(pid, 3).split("^")[0] == out.subject
    assert msg.field(pid, 5) == out.subject
    assert msg.segment("NK1") is None  # next of kin dropped whole
    obr = msg.segment("OBR")
    assert obr is not None
    # OBR-7 was 20240305 like the image's StudyDate: both moved by the subject's shift
    assert msg.field(obr, 7)[:8] == str(image_result.dataset.StudyDate)
    assert sorted(out.kept()) == sorted(item.keep)


def test_fhir_bundle_patient_replaced_practitioner_dropped() -> None:
    p = person(_rng(11))
    item = fhir_bundle(p, _rng(11))
    deid = deidentifier()
    image_result = deid.deidentify(make_dataset(patient_name=p.dicom_name, patient_id=p.mrn))
    out = run(item, deid)
    assert set(out.left()) <= set(item.hard), out.text
    assert out.subject == image_result.subject_id
    doc = json.loads(out.data)
    kinds = [e["resource"]["resourceType"] for e in doc["entry"]]
    assert kinds == ["Patient", "DiagnosticReport"]
    patient = doc["entry"][0]["resource"]
    assert patient["identifier"] == [
        {"system": "urn:trialpacs:trial:ONCO1:subject", "value": out.subject}
    ]
    assert "telecom" not in patient and "address" not in patient
    report = doc["entry"][1]["resource"]
    assert report["subject"]["reference"] == f"Patient/{patient['id']}"
    assert "performer" not in report and "identifier" not in report
    assert sorted(out.kept()) == sorted(item.keep)


def test_plain_text_record() -> None:
    p = person(_rng(13))
    text = f"Discharge letter for {p.first} {p.last}, MRN {p.mrn}. No pleural effusion.\n"
    _, wrapped = wrap_record(text.encode(), "letter.txt", Intake(patient=p.identity()))
    ds = dcmread(io.BytesIO(wrapped))
    result = deidentifier().deidentify(ds)
    sr = result.dataset.ContentSequence[0].TextValue
    assert p.mrn not in sr and p.last not in sr
    assert "No pleural effusion." in sr and result.subject_id in sr


@pytest.mark.slow
def test_video_masked_regions_hold_no_text_in_any_frame() -> None:
    item = video_clip(person(_rng(17)), _rng(17), frames=30)
    out = run(item, deidentifier(), ocr_every=1)  # OCR of every output frame
    assert out.frames == 30
    assert set(out.left()) <= set(item.hard), out.text
    import av

    with av.open(io.BytesIO(out.data)) as c:
        assert len(c.streams.audio) == 0 and len(c.streams.video) == 1
        assert "title" not in c.metadata and "comment" not in c.metadata
    text, _ = video_legible(out.data)
    assert "2024" not in text  # the running clock overlay is masked on every frame


def test_bad_inputs_are_named() -> None:
    with pytest.raises(InvalidInput, match="empty"):
        detect_format(b"")
    with pytest.raises(InvalidInput, match="not a PDF"):
        detect_format(b"\xff\xfe\x00\x01garbage\x9c")
    with pytest.raises(InvalidInput, match="resourceType 'Observation'"):
        detect_format(b'{"resourceType": "Observation"}')
    with pytest.raises(InvalidInput, match="no PID"):
        wrap_record(
            b"MSH|^~\\&|A|B|C|D|20240101||ORU^R01|1|P|2.5\rOBX|1|TX|||x\r", "m.hl7", Intake()
        )
    with pytest.raises(InvalidInput, match="patient_id is required"):
        wrap_record(b"%PDF-1.4\n%%EOF\n", "a.pdf", Intake())
    assert detect_format(b"plain words") is RecordFormat.TEXT


def test_a_pdf_that_cannot_be_redacted_is_refused() -> None:
    p = person(_rng(19))
    _, wrapped = wrap_record(b"%PDF-1.4 not really a pdf", "a.pdf", Intake(patient=p.identity()))
    ds = dcmread(io.BytesIO(wrapped))
    with pytest.raises(DeidError, match="PDF"):
        deidentifier().deidentify(ds)
