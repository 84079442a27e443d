"""The archive over DICOMweb, driven by dicomweb-client against a live server.

Runs once per backend (SQLite + files, PostgreSQL, S3 on moto). Every answer
is compared with what pydicom reads from the original files.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import httpx
import numpy as np
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from PIL import Image

from support.services import LiveServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(server: LiveServer) -> DICOMwebClient:
    return DICOMwebClient(url=server.dicomweb, headers=server.headers())


@pytest.fixture(scope="module")
def corpus(testdata: Path) -> list[dict[str, str]]:
    with (testdata / "index.csv").open() as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def loaded(client: DICOMwebClient, testdata_files: list[Path]) -> list[pydicom.Dataset]:
    """Store the whole corpus in batches of 10 through STOW-RS."""
    datasets = [pydicom.dcmread(p) for p in testdata_files]
    for i in range(0, len(datasets), 10):
        response = client.store_instances(datasets[i : i + 10])
        assert "00081198" not in response, response.FailedSOPSequence
        assert len(response.ReferencedSOPSequence) == len(datasets[i : i + 10])
    return datasets


def _by_sop(datasets: list[pydicom.Dataset]) -> dict[str, pydicom.Dataset]:
    return {ds.SOPInstanceUID: ds for ds in datasets}


def test_stow_is_idempotent(client: DICOMwebClient, loaded: list[pydicom.Dataset]) -> None:
    response = client.store_instances(loaded[:3])
    assert len(response.ReferencedSOPSequence) == 3
    assert "FailedSOPSequence" not in response


def test_study_list_matches_corpus(client: DICOMwebClient, loaded: list[pydicom.Dataset]) -> None:
    studies = client.search_for_studies()
    expected = {ds.StudyInstanceUID for ds in loaded}
    got = {s["0020000D"]["Value"][0] for s in studies}
    assert got == expected
    counts = {s["0020000D"]["Value"][0]: s["00201208"]["Value"][0] for s in studies}
    for uid in expected:
        assert counts[uid] == sum(1 for ds in loaded if ds.StudyInstanceUID == uid)


def test_ohif_study_list_query(client: DICOMwebClient, loaded: list[pydicom.Dataset]) -> None:
    studies = client.search_for_studies(
        fields=["00081030", "00080060", "00080090", "00100030"], limit=101, offset=0
    )
    brain = next(s for s in studies if s["0020000D"]["Value"][0] == loaded_uid(loaded, "brain_001"))
    assert brain["00081030"]["Value"] == ["BRAIN"]
    assert brain["00080061"]["Value"] == ["MR"]
    assert "00080060" in brain
    assert brain["00201206"]["Value"] == [1]


def loaded_uid(loaded: list[pydicom.Dataset], stem: str) -> str:
    for ds in loaded:
        if Path(ds.filename).stem == stem:
            return str(ds.StudyInstanceUID)
    raise AssertionError(stem)


def test_single_value_and_wildcard_matching(
    client: DICOMwebClient, loaded: list[pydicom.Dataset]
) -> None:
    ds = next(d for d in loaded if Path(d.filename).name == "MR3_UNC.dcm")
    exact = client.search_for_studies(search_filters={"PatientID": ds.PatientID})
    assert {s["0020000D"]["Value"][0] for s in exact} == {ds.StudyInstanceUID}
    family = str(ds.PatientName).split("^")[0]
    wild = client.search_for_studies(search_filters={"PatientName": family[:4] + "*"})
    expected = {
        d.StudyInstanceUID
        for d in loaded
        if str(d.PatientName).upper().startswith(family[:4].upper())
    }
    assert {s["0020000D"]["Value"][0] for s in wild} == expected
    question = client.search_for_studies(search_filters={"PatientID": ds.PatientID[:-1] + "?"})
    assert ds.StudyInstanceUID in {s["0020000D"]["Value"][0] for s in question}


def test_fuzzy_person_name(client: DICOMwebClient, loaded: list[pydicom.Dataset]) -> None:
    ds = next(d for d in loaded if Path(d.filename).name == "MR3_UNC.dcm")
    given = str(ds.PatientName).split("^")[-1]
    fuzzy = client.search_for_studies(
        search_filters={"PatientName": given.lower()}, fuzzymatching=True
    )
    assert ds.StudyInstanceUID in {s["0020000D"]["Value"][0] for s in fuzzy}
    strict = client.search_for_studies(search_filters={"PatientName": given.lower()})
    assert ds.StudyInstanceUID not in {s["0020000D"]["Value"][0] for s in strict}


def test_date_range_matching(client: DICOMwebClient, loaded: list[pydicom.Dataset]) -> None:
    dates = sorted({d.StudyDate for d in loaded if d.get("StudyDate")})
    low, high = dates[0], dates[len(dates) // 2]
    found = client.search_for_studies(search_filters={"StudyDate": f"{low}-{high}"})
    expected = {
        d.StudyInstanceUID for d in loaded if d.get("StudyDate") and low <= d.StudyDate <= high
    }
    assert {s["0020000D"]["Value"][0] for s in found} == expected
    open_ended = client.search_for_studies(search_filters={"StudyDate": f"{high}-"})
    expected = {d.StudyInstanceUID for d in loaded if d.get("StudyDate") and d.StudyDate >= high}
    assert {s["0020000D"]["Value"][0] for s in open_ended} == expected


def test_uid_list_matching(client: DICOMwebClient, loaded: list[pydicom.Dataset]) -> None:
    uids = sorted({d.StudyInstanceUID for d in loaded})[:3]
    found = client.search_for_studies(search_filters={"StudyInstanceUID": ",".join(uids)})
    assert {s["0020000D"]["Value"][0] for s in found} == set(uids)


def test_limit_and_offset(client: DICOMwebClient, loaded: list[pydicom.Dataset]) -> None:
    everything = [s["0020000D"]["Value"][0] for s in client.search_for_studies()]
    page1 = [s["0020000D"]["Value"][0] for s in client.search_for_studies(limit=3, offset=0)]
    page2 = [s["0020000D"]["Value"][0] for s in client.search_for_studies(limit=3, offset=3)]
    assert page1 + page2 == everything[:6]


def test_includefield_all(server: LiveServer, loaded: list[pydicom.Dataset]) -> None:
    ds = next(d for d in loaded if Path(d.filename).name == "MR2_UNC.dcm")
    r = httpx.get(
        f"{server.dicomweb}/studies",
        params={"StudyInstanceUID": ds.StudyInstanceUID, "includefield": "all"},
        headers=server.headers(),
    )
    assert r.status_code == 200
    study = r.json()[0]
    assert study["00180087"]["Value"] == [float(ds.MagneticFieldStrength)] or "00180087" in study


def test_series_and_instance_levels(client: DICOMwebClient, loaded: list[pydicom.Dataset]) -> None:
    series = client.search_for_series(search_filters={"Modality": "CT"})
    expected = {d.SeriesInstanceUID for d in loaded if d.Modality == "CT"}
    assert {s["0020000E"]["Value"][0] for s in series} == expected
    brain = [d for d in loaded if Path(d.filename).stem.startswith("brain_")]
    study, series_uid = brain[0].StudyInstanceUID, brain[0].SeriesInstanceUID
    in_study = client.search_for_series(study_instance_uid=study)
    assert [s["0020000E"]["Value"][0] for s in in_study] == [series_uid]
    instances = client.search_for_instances(
        study_instance_uid=study, series_instance_uid=series_uid
    )
    assert {i["00080018"]["Value"][0] for i in instances} == {d.SOPInstanceUID for d in brain}
    numbered = client.search_for_instances(
        study_instance_uid=study, search_filters={"InstanceNumber": "3"}
    )
    assert [i["00200013"]["Value"][0] for i in numbered] == [3]
    all_instances = client.search_for_instances(
        search_filters={"SOPInstanceUID": brain[4].SOPInstanceUID}
    )
    assert all_instances[0]["0020000D"]["Value"] == [study]


def test_retrieve_instance_as_stored(client: DICOMwebClient, loaded: list[pydicom.Dataset]) -> None:
    for original in loaded[::7]:
        got = client.retrieve_instance(
            original.StudyInstanceUID,
            original.SeriesInstanceUID,
            original.SOPInstanceUID,
            media_types=(("application/dicom", "*"),),
        )
        assert got.SOPInstanceUID == original.SOPInstanceUID
        assert got.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
        assert got.PixelData == original.PixelData
        assert got.preamble == b"\x00" * 128


def test_retrieve_transcodes_to_explicit_le(
    client: DICOMwebClient, loaded: list[pydicom.Dataset]
) -> None:
    j2k = next(d for d in loaded if Path(d.filename).name == "RG3_J2KR.dcm")
    got = client.retrieve_instance(
        j2k.StudyInstanceUID,
        j2k.SeriesInstanceUID,
        j2k.SOPInstanceUID,
        media_types=(("application/dicom", "1.2.840.10008.1.2.1"),),
    )
    assert got.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert np.array_equal(got.pixel_array, j2k.pixel_array)


def test_retrieve_study_and_series(client: DICOMwebClient, loaded: list[pydicom.Dataset]) -> None:
    prostate = [d for d in loaded if "mr-prostate-adc" in str(d.filename)]
    study = client.retrieve_study(prostate[0].StudyInstanceUID)
    assert {d.SOPInstanceUID for d in study} == {d.SOPInstanceUID for d in prostate}
    series = client.retrieve_series(prostate[0].StudyInstanceUID, prostate[0].SeriesInstanceUID)
    assert len(series) == len(prostate)


def test_metadata_at_every_level(client: DICOMwebClient, loaded: list[pydicom.Dataset]) -> None:
    brain = [d for d in loaded if Path(d.filename).stem.startswith("brain_")]
    meta = client.retrieve_series_metadata(brain[0].StudyInstanceUID, brain[0].SeriesInstanceUID)
    assert len(meta) == len(brain)
    originals = _by_sop(brain)
    for item in meta:
        ds = pydicom.Dataset.from_json(item, bulk_data_uri_handler=lambda *a: b"")
        orig = originals[ds.SOPInstanceUID]
        assert ds.Rows == orig.Rows and ds.Columns == orig.Columns
        assert ds.ImagePositionPatient == orig.ImagePositionPatient
        assert "BulkDataURI" in item["7FE00010"]
    study_meta = client.retrieve_study_metadata(brain[0].StudyInstanceUID)
    assert len(study_meta) == len(brain)
    one = client.retrieve_instance_metadata(
        brain[0].StudyInstanceUID, brain[0].SeriesInstanceUID, brain[0].SOPInstanceUID
    )
    assert one["00080018"]["Value"] == [brain[0].SOPInstanceUID]


def test_bulkdata_uri_resolves(
    server: LiveServer, client: DICOMwebClient, loaded: list[pydicom.Dataset]
) -> None:
    ct = next(d for d in loaded if Path(d.filename).name == "CT1_UNC.dcm")
    meta = client.retrieve_instance_metadata(
        ct.StudyInstanceUID, ct.SeriesInstanceUID, ct.SOPInstanceUID
    )
    uri = meta["7FE00010"]["BulkDataURI"]
    assert uri.startswith(server.dicomweb)
    data = client.retrieve_bulkdata(uri)
    assert data[0] == ct.PixelData


def test_frames_uncompressed_and_as_stored(
    client: DICOMwebClient, loaded: list[pydicom.Dataset]
) -> None:
    multi = next(d for d in loaded if Path(d.filename).name == "emri_small.dcm")
    frames = client.retrieve_instance_frames(
        multi.StudyInstanceUID, multi.SeriesInstanceUID, multi.SOPInstanceUID, frame_numbers=[2, 5]
    )
    arr = multi.pixel_array
    assert frames[0] == arr[1].astype("<u2").tobytes()
    assert frames[1] == arr[4].astype("<u2").tobytes()
    j2k = next(d for d in loaded if Path(d.filename).name == "RG3_J2KR.dcm")
    raw = client.retrieve_instance_frames(
        j2k.StudyInstanceUID,
        j2k.SeriesInstanceUID,
        j2k.SOPInstanceUID,
        frame_numbers=[1],
        media_types=(("application/octet-stream", "1.2.840.10008.1.2.1"),),
    )
    assert raw[0] == j2k.pixel_array.astype("<u2").tobytes()
    stored = client.retrieve_instance_frames(
        j2k.StudyInstanceUID,
        j2k.SeriesInstanceUID,
        j2k.SOPInstanceUID,
        frame_numbers=[1],
        media_types=(("image/jp2", "1.2.840.10008.1.2.4.90"),),
    )
    assert stored[0][:4] in (b"\xff\x4f\xff\x51", b"\x00\x00\x00\x0c")


def test_rendered_and_thumbnail(
    client: DICOMwebClient, server: LiveServer, loaded: list[pydicom.Dataset]
) -> None:
    ct = next(d for d in loaded if Path(d.filename).name == "CT1_UNC.dcm")
    jpeg = client.retrieve_instance_rendered(
        ct.StudyInstanceUID,
        ct.SeriesInstanceUID,
        ct.SOPInstanceUID,
        params={"window": "40,400,linear", "viewport": "256,256", "quality": "80"},
    )
    img = Image.open(io.BytesIO(jpeg))
    assert img.format == "JPEG" and img.size == (256, 256)
    assert np.asarray(img).std() > 5
    png = client.retrieve_instance_rendered(
        ct.StudyInstanceUID, ct.SeriesInstanceUID, ct.SOPInstanceUID, media_types=("image/png",)
    )
    assert Image.open(io.BytesIO(png)).size == (512, 512)
    r = httpx.get(
        f"{server.dicomweb}/studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}/thumbnail",
        headers={**server.headers(), "Accept": "image/jpeg"},
    )
    assert r.status_code == 200
    assert max(Image.open(io.BytesIO(r.content)).size) == 128


def test_degenerate_window_is_not_black(
    client: DICOMwebClient, loaded: list[pydicom.Dataset]
) -> None:
    brain = next(d for d in loaded if Path(d.filename).name == "brain_010.dcm")
    jpeg = client.retrieve_instance_rendered(
        brain.StudyInstanceUID, brain.SeriesInstanceUID, brain.SOPInstanceUID
    )
    assert np.asarray(Image.open(io.BytesIO(jpeg))).max() > 100


def test_wado_uri(server: LiveServer, loaded: list[pydicom.Dataset]) -> None:
    ds = next(d for d in loaded if Path(d.filename).name == "MR1_UNC.dcm")
    params = {
        "requestType": "WADO",
        "studyUID": ds.StudyInstanceUID,
        "seriesUID": ds.SeriesInstanceUID,
        "objectUID": ds.SOPInstanceUID,
    }
    r = httpx.get(
        f"{server.url}/wado",
        params={**params, "contentType": "application/dicom"},
        headers=server.headers(),
    )
    assert r.status_code == 200
    assert pydicom.dcmread(io.BytesIO(r.content)).SOPInstanceUID == ds.SOPInstanceUID
    r = httpx.get(f"{server.dicomweb}/wado", params=params, headers=server.headers())
    assert r.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(r.content)).size == (512, 512)


def test_unknown_objects_are_404(server: LiveServer, loaded: list[pydicom.Dataset]) -> None:
    for path in (
        "/studies/1.2.3.4/metadata",
        "/studies/1.2.3.4",
        "/studies/1.2.3/series/4.5/instances/6.7/frames/1",
    ):
        r = httpx.get(server.dicomweb + path, headers=server.headers())
        assert r.status_code == 404, path
    ds = loaded[0]
    r = httpx.get(
        f"{server.dicomweb}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}/frames/99",
        headers=server.headers(),
    )
    assert r.status_code == 404
    assert "frame 99" in r.json()["detail"]
