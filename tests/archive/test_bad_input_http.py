"""Bad input over HTTP: a clear error that names the problem, nothing stored lost."""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pydicom
import pytest

from dicomfactory import make_bytes, make_dataset, to_bytes
from support.services import LiveServer, live_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """SQLite server with a 3 MB request limit."""
    with live_server(
        tmp_path_factory.mktemp("badinput"), {"TRIALPACS_MAX_REQUEST_BYTES": str(3 * 1024 * 1024)}
    ) as srv:
        yield srv


def multipart(parts: list[tuple[str, bytes]], boundary: str = "xyzzy") -> bytes:
    out = b""
    for ctype, body in parts:
        out += f"--{boundary}\r\nContent-Type: {ctype}\r\n\r\n".encode() + body + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


CTYPE = 'multipart/related; type="application/dicom"; boundary=xyzzy'


def post(
    server: LiveServer, body: bytes, path: str = "/studies", ctype: str = CTYPE
) -> httpx.Response:
    return httpx.post(
        server.dicomweb + path, content=body, headers={**server.headers(), "Content-Type": ctype}
    )


def test_requires_token(small_server: LiveServer) -> None:
    r = httpx.get(small_server.dicomweb + "/studies")
    assert r.status_code == 401
    assert "bearer token" in r.json()["detail"]
    r = httpx.get(small_server.dicomweb + "/studies", headers={"Authorization": "Bearer tp_wrong"})
    assert r.status_code == 401
    assert httpx.get(small_server.url + "/health").status_code == 200


def test_wrong_content_type_is_415(small_server: LiveServer) -> None:
    r = post(small_server, make_bytes(), ctype="application/dicom")
    assert r.status_code == 415
    assert "multipart/related" in r.json()["detail"]
    r = post(
        small_server, b"{}", ctype='multipart/related; type="application/dicom+json"; boundary=x'
    )
    assert r.status_code == 415


def test_oversized_request_is_413(small_server: LiveServer) -> None:
    body = multipart([("application/dicom", b"\0" * (4 * 1024 * 1024))])
    r = post(small_server, body)
    assert r.status_code == 413
    assert "limit" in r.json()["detail"]


def test_missing_boundary_is_400(small_server: LiveServer) -> None:
    r = post(small_server, b"junk", ctype='multipart/related; type="application/dicom"')
    assert r.status_code == 400
    assert "boundary" in r.json()["detail"]


def test_one_bad_part_fails_only_itself(small_server: LiveServer) -> None:
    good = make_bytes()
    body = multipart(
        [
            ("application/dicom", good),
            ("application/dicom", b"this is not DICOM at all" * 10),
            ("text/plain", b"hello"),
        ]
    )
    r = post(small_server, body)
    assert r.status_code == 202
    result = r.json()
    assert len(result["00081199"]["Value"]) == 1
    failed = result["00081198"]["Value"]
    assert len(failed) == 2
    assert all(item["00081197"]["Value"] == [0xC000] for item in failed)
    assert "DICM" in r.headers["warning"] and "text/plain" in r.headers["warning"]


def test_study_mismatch_fails_that_instance(small_server: LiveServer) -> None:
    study = "1.2.826.0.1.3680043.8.498.1"
    body = multipart(
        [
            ("application/dicom", make_bytes(study=study)),
            ("application/dicom", make_bytes(study="1.2.826.0.1.3680043.8.498.2")),
        ]
    )
    r = post(small_server, body, path=f"/studies/{study}")
    assert r.status_code == 202
    failed = r.json()["00081198"]["Value"]
    assert failed[0]["00081197"]["Value"] == [0xA900]


def test_invalid_uid_in_url_is_400(small_server: LiveServer) -> None:
    r = httpx.get(small_server.dicomweb + "/studies/1.2.x/metadata", headers=small_server.headers())
    assert r.status_code == 400
    assert "not a valid UID" in r.json()["detail"]
    r = post(
        small_server, multipart([("application/dicom", make_bytes())]), path="/studies/..%2F.."
    )
    assert r.status_code in (400, 404)


def test_invalid_uid_in_dataset_fails(small_server: LiveServer) -> None:
    ds = make_dataset()
    ds.SOPInstanceUID = "1.2.3.abc"
    r = post(small_server, multipart([("application/dicom", to_bytes(ds))]))
    assert r.status_code == 409
    assert "not a valid UID" in r.headers["warning"]


def test_conflicting_bytes_are_refused_and_original_kept(small_server: LiveServer) -> None:
    ds = make_dataset(value=1)
    first = to_bytes(ds)
    assert post(small_server, multipart([("application/dicom", first)])).status_code == 200
    other = make_dataset(
        sop=ds.SOPInstanceUID, study=ds.StudyInstanceUID, series=ds.SeriesInstanceUID, value=2
    )
    r = post(small_server, multipart([("application/dicom", to_bytes(other))]))
    assert r.status_code == 409
    assert r.json()["00081198"]["Value"][0]["00081197"]["Value"] == [0x0111]
    assert "different content" in r.headers["warning"]
    got = httpx.get(
        f"{small_server.dicomweb}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}",
        headers={
            **small_server.headers(),
            "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*',
        },
    )
    assert got.status_code == 200
    assert first[132:] in got.content  # the original bytes, unchanged


def test_truncated_instance_leaves_nothing(small_server: LiveServer, testdata: Path) -> None:
    data = (testdata / "ct" / "CT2_UNC.dcm").read_bytes()
    r = post(small_server, multipart([("application/dicom", data[: len(data) // 2])]))
    assert r.status_code == 409
    assert "truncated" in r.headers["warning"]
    sop = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).SOPInstanceUID
    q = httpx.get(
        small_server.dicomweb + "/instances",
        params={"SOPInstanceUID": sop},
        headers=small_server.headers(),
    )
    assert q.json() == []
    leftovers = [p for p in (small_server.data_dir / "blobs").rglob("*") if sop in p.name]
    assert leftovers == []


def test_bad_qido_parameters(small_server: LiveServer) -> None:
    cases = {
        "StudyDate": "2020-01-01",
        "limit": "ten",
        "NoSuchKeyword": "1",
        "fuzzymatching": "maybe",
    }
    for key, value in cases.items():
        r = httpx.get(
            small_server.dicomweb + "/studies", params={key: value}, headers=small_server.headers()
        )
        assert r.status_code == 400, key
        assert r.json()["detail"]


def test_not_acceptable(small_server: LiveServer) -> None:
    r = httpx.get(
        small_server.dicomweb + "/studies",
        headers={**small_server.headers(), "Accept": "text/html"},
    )
    assert r.status_code == 406


def test_server_survives_garbage(small_server: LiveServer) -> None:
    junk = zlib.compress(b"x" * 1000)
    for body in (b"", junk, b"--xyzzy\r\n\r\n", b"--xyzzy--"):
        r = post(small_server, body)
        assert r.status_code in (400, 409), body
    assert httpx.get(small_server.url + "/health").status_code == 200
