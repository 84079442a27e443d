"""Routing of identified data: STOW URL, import, DIMSE called AE; collections stay apart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dicomfactory import make_dataset, to_bytes
from trialpacs.access.tokens import create_token
from trialpacs.archive import Archive
from trialpacs.errors import Conflict, NotFound
from trialpacs.ingest.store import StoreOutcome, store_bytes
from trialpacs.trials import backends, routing
from trialpacs.trials.events import recent_events
from trialpacs.trials.intake import store_for_site
from trialpacs.trials.models import PUBLISHED, QUARANTINE, UNASSIGNED
from trialpacs.web.app import create_app
from trials.support import configured

CTYPE = 'multipart/related; type="application/dicom"; boundary=xyzzy'


def multipart(datas: list[bytes]) -> bytes:
    out = b""
    for body in datas:
        out += b"--xyzzy\r\nContent-Type: application/dicom\r\n\r\n" + body + b"\r\n"
    return out + b"--xyzzy--\r\n"


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    archive = configured(tmp_path, pipeline_executor="off")
    routing.forget_cache()
    yield archive
    archive.close()


def test_dimse_routes_by_called_ae_and_calling_site(archive: Archive) -> None:
    def r(*args: str) -> tuple[str, str | None, str | None]:
        route = routing.route_dimse(*args)  # type: ignore[arg-type]
        return (route.collection, route.trial_id, route.site_id)

    assert r(archive, "ONCO1_S01", "PACS_S01", "127.0.0.1") == (QUARANTINE, "ONCO1", "S01")
    # The trial AE: the site comes from the calling AE...
    assert r(archive, "ONCO1", "PACS_S02", "10.1.2.3") == (QUARANTINE, "ONCO1", "S02")
    # ...or from the peer's host when the caller is not a known AE.
    assert r(archive, "ONCO1", "MODALITY", "127.0.0.1") == (QUARANTINE, "ONCO1", "S01")
    # A site AE called by another site's PACS is not trusted: unassigned.
    assert r(archive, "ONCO1_S01", "PACS_S02", "10.1.2.3")[0] == UNASSIGNED
    # Unknown caller on the trial AE, and an AE of no trial: unassigned.
    assert r(archive, "ONCO1", "WHO", "192.0.2.1")[0] == UNASSIGNED
    assert r(archive, "NOTRIAL", "PACS_S01", "127.0.0.1")[0] == UNASSIGNED
    # The archive's own AE keeps the plain archive behaviour.
    assert routing.route_dimse(archive, "TRIALPACS", "PACS_S01", "1.2.3.4") == routing.ARCHIVE_ROUTE


def test_unassigned_data_is_kept_and_reported(archive: Archive) -> None:
    place = routing.dimse_placement(archive, "NOTRIAL", "PACS_S01", "127.0.0.1")
    assert (place.collection, place.site_id, place.store_name) == (UNASSIGNED, "S01", "q-eu")
    out = store_bytes(archive, to_bytes(make_dataset()), placement=place)
    assert isinstance(out, StoreOutcome)
    assert any(e["kind"] == "unassigned" for e in recent_events(archive.db))
    assert (archive.settings.data_dir / "q-eu").is_dir()


def test_trial_site_route_requires_enrollment(archive: Archive) -> None:
    with pytest.raises(NotFound):
        routing.route_trial_site(archive, "ONCO1", "S09")
    with pytest.raises(NotFound):
        routing.route_trial_site(archive, "NOPE", "S01")


def test_identified_write_to_another_region_is_refused_and_recorded(archive: Archive) -> None:
    with pytest.raises(backends.ResidencyViolation, match="region 'us-east'"):
        backends.identified_store(archive, "q-us", site_id="S01", site_region="eu-west")
    with pytest.raises(backends.ResidencyViolation, match="for deidentified data"):
        backends.identified_store(archive, "published", site_id="S01", site_region="local")
    events = recent_events(archive.db, "residency_refused")
    assert len(events) == 2 and events[1]["site"] == "S01"
    assert not (archive.settings.data_dir / "q-us").exists()


def test_collections_never_mix(archive: Archive) -> None:
    ds = make_dataset()
    (stored,) = store_for_site(archive, [to_bytes(ds)], "ONCO1", "S01")
    assert isinstance(stored, StoreOutcome)
    # The identified study may not gain instances through the published archive...
    other = make_dataset(study=str(ds.StudyInstanceUID))
    with pytest.raises(Conflict, match="already stored elsewhere"):
        store_bytes(archive, to_bytes(other))
    # ...nor through another site.
    (refused,) = store_for_site(archive, [to_bytes(other)], "ONCO1", "S02")
    assert isinstance(refused, Conflict)


def test_stow_to_site_goes_to_quarantine_and_is_invisible(archive: Archive) -> None:
    token = create_token(archive.db, "uploader")
    phi = create_token(archive.db, "site-admin")
    client = TestClient(create_app(archive))
    auth = {"Authorization": f"Bearer {token}", "Content-Type": CTYPE}
    ds = make_dataset(patient_name="SECRET^PATIENT")
    study = str(ds.StudyInstanceUID)
    res = client.post(
        "/dicomweb/trials/ONCO1/sites/S01/studies", content=multipart([to_bytes(ds)]), headers=auth
    )
    assert res.status_code == 200, res.text
    # Not in the published archive: QIDO, WADO, metadata.
    q = client.get("/dicomweb/studies", headers=auth)
    assert q.status_code == 200 and q.json() == []
    assert "SECRET" not in q.text
    assert client.get(f"/dicomweb/studies/{study}/metadata", headers=auth).status_code == 404
    assert client.get(f"/dicomweb/studies/{study}", headers=auth).status_code == 404
    # The blob is in the site's backend, not the published store.
    assert list(archive.store.keys()) == []
    assert len(list(backends.registry(archive).store("q-eu").keys())) == 1
    # Identified search: only a role with PHI at that site; others see a 404.
    url = "/dicomweb/trials/ONCO1/sites/S01/studies"
    assert client.get(url, headers=auth).status_code == 404
    ok = client.get(url, headers={"Authorization": f"Bearer {phi}"})
    assert ok.status_code == 200 and ok.json()[0]["0020000D"]["Value"] == [study]
    s02 = "/dicomweb/trials/ONCO1/sites/S02/studies"
    assert client.get(s02, headers={"Authorization": f"Bearer {phi}"}).status_code == 404
    # Unknown trial or site: 404, nothing stored.
    bad = client.post(
        "/dicomweb/trials/ONCO1/sites/S09/studies",
        content=multipart([to_bytes(make_dataset())]),
        headers=auth,
    )
    assert bad.status_code == 404
    # Plain STOW still stores into the published archive.
    plain = client.post(
        "/dicomweb/studies", content=multipart([to_bytes(make_dataset())]), headers=auth
    )
    assert plain.status_code == 200
    assert len(client.get("/dicomweb/studies", headers=auth).json()) == 1
    with archive.db.read() as session:
        from trialpacs.index.models import Study

        kinds = sorted(s.collection for s in session.query(Study))
    assert kinds == [PUBLISHED, QUARANTINE]


def test_import_with_trial_and_site(tmp_path: Path, archive: Archive) -> None:
    import subprocess
    import sys

    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.dcm").write_bytes(to_bytes(make_dataset(instance_number=i)))
    cmd = [sys.executable, "-m", "trialpacs.cli.main", "import", str(folder)]
    args = ["--data-dir", str(archive.settings.data_dir)]
    res = subprocess.run(
        [*cmd, *args, "--trial", "ONCO1", "--site", "S01"], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    with archive.db.read() as session:
        from trialpacs.index.models import Study

        rows = [(s.collection, s.trial_id, s.site_id) for s in session.query(Study)]
    assert rows == [(QUARANTINE, "ONCO1", "S01")] * 3
    res = subprocess.run(
        [*cmd, *args, "--trial", "ONCO1", "--site", "S09"], capture_output=True, text=True
    )
    assert res.returncode == 2 and "no site 'S09'" in res.stderr
