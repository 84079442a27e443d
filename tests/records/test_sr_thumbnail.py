"""A report (Basic Text SR) has a thumbnail: a page glyph naming its kind, no patient data."""

from __future__ import annotations

import io
import random
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from labelled_records import fhir_bundle, hl7, person
from PIL import Image

from trialpacs.access.apikeys import create_key
from trialpacs.archive import Archive
from trialpacs.pipeline import qc
from trialpacs.pipeline.process import process_series
from trialpacs.records.intake import Intake, take_in
from trialpacs.web.app import create_app
from trials.support import configured


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    archive = configured(tmp_path, pipeline_executor="off", series_settle_seconds=0)
    yield archive
    archive.close()


def _reader(archive: Archive) -> TestClient:
    key = create_key(archive.db, "thumb-reader", grants=["reader@ONCO1"], scopes=["*"])
    return TestClient(create_app(archive), headers={"Authorization": f"Bearer {key}"})


def test_report_thumbnail_is_the_same_page_glyph_for_every_patient(archive: Archive) -> None:
    messages = []
    for seed in (51, 52):
        p = person(random.Random(seed))
        messages.append(hl7(p, random.Random(seed)).data)
    messages.append(fhir_bundle(person(random.Random(53)), random.Random(53)).data)
    for i, data in enumerate(messages):
        name = "oru.hl7" if i < 2 else "bundle.json"
        res = take_in(archive, "ONCO1", "S01", data, name, Intake())
        assert process_series(archive, res.series_uid, qc.PassThroughQc()).state == "published"
    reader = _reader(archive)
    records = reader.get("/api/trials/ONCO1/records").json()
    assert len(records) == 3 and len({r["subject"] for r in records}) == 3

    thumbs: dict[str, list[bytes]] = {}
    for rec in records:
        base = f"/dicomweb/studies/{rec['study_uid']}/series/{rec['series_uid']}"
        # what the portal's worklist and study page ask for each series' first instance
        r = reader.get(
            f"{base}/instances/{rec['sop_uid']}/thumbnail?viewport=128,128",
            headers={"Accept": "image/jpeg"},
        )
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg", r.text
        image = np.asarray(Image.open(io.BytesIO(r.content)).convert("L"))
        assert max(image.shape) == 128 and image.shape[0] == image.shape[1]
        assert (image > 240).mean() > 0.2 and (image < 90).mean() > 0.05  # page and header
        thumbs.setdefault(rec["kind"], []).append(r.content)
        series = reader.get(f"{base}/thumbnail", headers={"Accept": "image/png"})
        assert series.status_code == 200 and series.content.startswith(b"\x89PNG")
        # a report has no rendered image or frames: those still say so
        none = reader.get(
            f"{base}/instances/{rec['sop_uid']}/rendered", headers={"Accept": "image/jpeg"}
        )
        assert none.status_code == 404 and "no pixel data" in none.text
    # nothing of the patient in it: two patients' HL7 reports give the same bytes,
    # and the FHIR report a different label
    assert len(thumbs["Records: HL7 v2"]) == 2
    assert thumbs["Records: HL7 v2"][0] == thumbs["Records: HL7 v2"][1]
    assert thumbs["Records: FHIR R4"][0] != thumbs["Records: HL7 v2"][0]
    assert all(re.fullmatch(r"Records: .*", k) for k in thumbs)
