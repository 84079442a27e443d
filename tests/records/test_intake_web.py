"""Site upload → quarantine → pipeline → published DICOM → DICOMweb, download; access, audit."""

from __future__ import annotations

import io
import json
import random
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from labelled_records import hl7, person, text_pdf, video_clip
from PIL import Image
from pydicom import dcmread

from dicomfactory import make_dataset, to_bytes
from trialpacs.access.apikeys import create_key
from trialpacs.archive import Archive
from trialpacs.audit.chain import query
from trialpacs.pipeline import qc
from trialpacs.pipeline.process import process_series
from trialpacs.records import pdf
from trialpacs.trials.intake import store_for_site
from trialpacs.web.app import create_app
from trials.support import configured

UPLOAD = "/api/trials/ONCO1/sites/S01/records"


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    archive = configured(tmp_path, pipeline_executor="off", series_settle_seconds=0)
    yield archive
    archive.close()


def _client(archive: Archive, *grants: str) -> TestClient:
    name = re.sub(r"[^A-Za-z0-9._-]", "-", "user-" + "-".join(grants))
    key = create_key(archive.db, name, grants=grants, scopes=["*"])
    return TestClient(create_app(archive), headers={"Authorization": f"Bearer {key}"})


@pytest.mark.slow
def test_records_go_from_upload_to_dicomweb_next_to_the_images(archive: Archive) -> None:
    rng = random.Random(3)
    p = person(rng)
    image = make_dataset(patient_name=p.dicom_name, patient_id=p.mrn)
    store_for_site(archive, [to_bytes(image)], "ONCO1", "S01")
    process_series(archive, str(image.SeriesInstanceUID), qc.PassThroughQc())

    coordinator = _client(archive, "site_coordinator@ONCO1/S01")
    reader = _client(archive, "reader@ONCO1")
    outsider = _client(archive, "reader@OTHER1")
    study = str(image.StudyInstanceUID)
    fields = {"patient_id": p.mrn, "patient_name": p.dicom_name, "study_uid": study,
              "time_point": "BL"}  # fmt: skip
    uploads = {
        "pdf": ("report.pdf", text_pdf(p, rng).data, fields),
        "hl7v2": ("oru.hl7", hl7(p, rng).data, {"study_uid": study}),
        "video": ("clip.mp4", video_clip(p, rng, frames=15).data, fields),
    }
    series = {}
    for fmt, (name, data, form) in uploads.items():
        r = coordinator.post(UPLOAD, files={"file": (name, data)}, data=form)
        assert r.status_code == 201, r.text
        assert r.json()["format"] == fmt and r.json()["study_uid"] == study
        series[fmt] = r.json()["series_uid"]
        out = process_series(archive, series[fmt], qc.PassThroughQc())
        assert out.state == "published", out

    # a reader of the trial finds the records in the subject's de-identified study
    studies = reader.get("/dicomweb/studies").json()
    assert len(studies) == 1
    deid_study = studies[0]["0020000D"]["Value"][0]
    subject = studies[0]["00100020"]["Value"][0]
    listed = reader.get(f"/dicomweb/studies/{deid_study}/series").json()
    modalities = sorted(s["00080060"]["Value"][0] for s in listed)
    assert modalities == ["DOC", "MR", "SR", "XC"]

    records = reader.get("/api/trials/ONCO1/records").json()
    assert {r["subject"] for r in records} == {subject} and len(records) == 3
    by_kind = {r["kind"]: r for r in records}

    # DICOMweb retrieval of the Encapsulated PDF: the document inside is redacted
    rec = by_kind["Records: PDF"]
    r = reader.get(
        f"/dicomweb/studies/{deid_study}/series/{rec['series_uid']}/instances/{rec['sop_uid']}",
        headers={"Accept": 'multipart/related; type="application/dicom"'},
    )
    assert r.status_code == 200
    assert p.mrn.encode() not in r.content and p.last.encode() not in r.content

    # what OHIF's PDF viewer fetches: the document as bulk data named in the metadata
    base = f"/dicomweb/studies/{deid_study}/series/{rec['series_uid']}/instances/{rec['sop_uid']}"
    meta = reader.get(base + "/metadata").json()[0]
    assert meta["00420012"]["Value"] == ["application/pdf"]
    assert "BulkDataURI" in meta["00420011"]
    bulk = reader.get(base + "/bulkdata/00420011")
    assert bulk.status_code == 200 and b"%PDF" in bulk.content
    # its thumbnail (portal series list, OHIF study panel): the first page, mostly white
    thumb = reader.get(base + "/thumbnail?viewport=96,96", headers={"Accept": "image/jpeg"})
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    page_image = np.asarray(Image.open(io.BytesIO(thumb.content)).convert("L"))
    assert max(page_image.shape) == 96 and (page_image > 200).mean() > 0.5
    assert page_image.min() < 100  # some text (or redaction boxes) on it

    # original formats for download
    got = reader.get(rec["download"])
    assert got.status_code == 200 and got.headers["content-type"] == "application/pdf"
    text = pdf.extract_text(got.content)
    assert p.mrn not in text and subject in text
    msg = reader.get(by_kind["Records: HL7 v2"]["download"])
    assert msg.status_code == 200 and msg.content.startswith(b"MSH|")
    assert p.mrn.encode() not in msg.content and subject.encode() in msg.content
    mp4 = reader.get(by_kind["Records: video"]["download"])
    assert mp4.status_code == 200 and mp4.headers["content-type"] == "video/mp4"
    assert mp4.content[4:8] == b"ftyp"

    # the portal's study page lists the records and plays the video (same-origin download)
    page = reader.get(f"/studies/{deid_study}")
    assert page.status_code == 200, page.text
    assert "<h2>Records</h2>" in page.text
    video_url = by_kind["Records: video"]["download"]
    assert f'<video controls preload="metadata" width="480" src="{video_url}">' in page.text
    assert by_kind["Records: PDF"]["download"] in page.text

    # another trial's user: the record does not exist for them
    assert outsider.get(rec["download"]).status_code == 404
    assert outsider.get("/api/trials/ONCO1/records").json() == []
    assert outsider.post(UPLOAD, files={"file": ("a.txt", b"x")}, data=fields).status_code == 404
    # and the coordinator of another site cannot upload here
    other_site = _client(archive, "site_coordinator@ONCO1/S02")
    assert other_site.post(UPLOAD, files={"file": ("a.txt", b"x")}, data=fields).status_code == 404

    actions = [e["action"] for e in query(archive.db)]
    assert actions.count("POST /api/trials/{trial}/sites/{site}/records") >= 3
    assert "GET /api/records/{sop}/download" in actions


def test_upload_refuses_bad_input_with_a_reason(archive: Archive) -> None:
    coordinator = _client(archive, "site_coordinator@ONCO1/S01")
    r = coordinator.post(UPLOAD, files={"file": ("a.pdf", b"%PDF-1.4\n%%EOF\n")})
    assert r.status_code == 400 and "patient_id is required" in r.json()["detail"]
    r = coordinator.post(UPLOAD, files={"file": ("x.json", json.dumps({"a": 1}).encode())})
    assert r.status_code == 400 and "FHIR" in r.json()["detail"]
    r = coordinator.post(
        UPLOAD,
        files={"file": ("a.txt", b"text")},
        data={"patient_id": "P1", "study_uid": "not-a-uid"},
    )
    assert r.status_code == 400 and "study_uid" in r.json()["detail"]
    # nothing half-stored
    assert coordinator.get("/dicomweb/trials/ONCO1/sites/S01/studies").json() == []


def test_deidentified_video_dicom_round_trips(archive: Archive) -> None:
    """A DICOM video (MPEG-4 AVC) uploaded as such is accepted and published the same way."""
    from trialpacs.records.intake import Intake, wrap_record

    p = person(random.Random(21))
    _, wrapped = wrap_record(video_clip(p, random.Random(21), frames=10).data, "c.mp4",
                             Intake(patient=p.identity()))  # fmt: skip
    coordinator = _client(archive, "site_coordinator@ONCO1/S01")
    r = coordinator.post(UPLOAD, files={"file": ("v.dcm", wrapped)})
    assert r.status_code == 201, r.text
    assert r.json()["format"] == "dicom"
    out = process_series(archive, r.json()["series_uid"], qc.PassThroughQc())
    assert out.state == "published"
    reader = _client(archive, "reader@ONCO1")
    rec = reader.get("/api/trials/ONCO1/records").json()[0]
    ds = dcmread(io.BytesIO(_instance(reader, rec)))
    assert str(ds.file_meta.TransferSyntaxUID) == "1.2.840.10008.1.2.4.102"
    assert ds.BurnedInAnnotation == "NO" and ds.PatientIdentityRemoved == "YES"
    assert int(ds.NumberOfFrames) == 10
    # what a browser asks: the video itself as MP4, a thumbnail of its first frame
    base = (
        f"/dicomweb/studies/{rec['study_uid']}/series/{rec['series_uid']}"
        f"/instances/{rec['sop_uid']}"
    )
    mp4 = reader.get(base + "/rendered", headers={"Accept": "*/*"})
    assert mp4.status_code == 200 and mp4.headers["content-type"] == "video/mp4"
    assert mp4.content[4:8] == b"ftyp"
    thumb = reader.get(base + "/thumbnail?viewport=64,64", headers={"Accept": "image/jpeg"})
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    image = Image.open(io.BytesIO(thumb.content))
    assert max(image.size) == 64 and np.asarray(image).std() > 10
    jpeg = reader.get(base + "/frames/10/rendered", headers={"Accept": "image/jpeg"})
    assert jpeg.status_code == 200 and jpeg.content[:2] == b"\xff\xd8"


def _instance(client: TestClient, rec: dict[str, str]) -> bytes:
    url = (
        f"/dicomweb/studies/{rec['study_uid']}/series/{rec['series_uid']}"
        f"/instances/{rec['sop_uid']}"
    )
    r = client.get(
        url, headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'}
    )
    assert r.status_code == 200, r.text
    body = r.content
    start = body.index(b"\r\n\r\n") + 4
    boundary = body.split(b"\r\n", 1)[0]
    return body[start : body.index(b"\r\n" + boundary, start)]
