"""Object-level checks on C-FIND, C-MOVE and C-GET: a calling AE is a principal.

Studies: A and B published in trial T1 (sites S1, S2), C published in T2,
L published outside any trial, D identified (quarantine) in T1/S1. Peers:
READER1 holds ``reader@T1`` (given with ``trialpacs ae add --grant``),
UNBOUND is known but has no site and no grant, SITEPACS is S1's PACS
(``--site S1``: it stores, it reads nothing). A refused study must answer
exactly like a missing one.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from dicomfactory import MR_STORAGE, make_bytes
from dimse.conftest import DimseServer, cli, dcmtk_env, dimse_archive
from dimse.test_live import StorageSCP
from support.services import free_port
from trialpacs.access.policy import Grant
from trialpacs.archive import Archive
from trialpacs.config import apply, load_text
from trialpacs.dimse import peers, remote_aes
from trialpacs.ingest.store import Placement, StoreOutcome, store_many
from trialpacs.settings import Settings
from trialpacs.trials.intake import store_for_site

pytestmark = pytest.mark.slow

CONFIG = """\
version: 1
regions:
  - id: eu
storage_backends:
  - name: q-eu
    kind: local
    path: {tmp}/q-eu
    region: eu
    purpose: identified
profiles:
  - name: basic
    extends: trial
sites:
  - {{id: S1, name: One, region: eu, identified_backend: q-eu}}
  - {{id: S2, name: Two, region: eu, identified_backend: q-eu}}
trials:
  - id: T1
    name: Trial one
    profile: basic
    deid_regions: [local, eu]
    sites: [{{site: S1}}, {{site: S2}}]
  - id: T2
    name: Trial two
    profile: basic
    deid_regions: [local, eu]
    sites: [{{site: S1}}]
"""


@dataclass
class Study:
    study: str
    sop: str
    patient: str


@dataclass
class World:
    server: DimseServer
    studies: dict[str, Study]
    dest_port: int


def _data(label: str) -> tuple[Study, bytes]:
    st, sop = generate_uid(), generate_uid()
    patient = f"PID-{label}"
    return Study(st, sop, patient), make_bytes(study=st, sop=sop, patient_id=patient)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with dimse_archive(tmp_path_factory) as server:
        data_dir = server.live.data_dir
        archive = Archive.open(Settings(data_dir=data_dir), migrate=False)
        dest_port = free_port()
        studies: dict[str, Study] = {}
        try:
            apply(archive, load_text(CONFIG.format(tmp=data_dir)))
            for label, trial, site in (("A", "T1", "S1"), ("B", "T1", "S2"), ("C", "T2", "S1")):
                s, data = _data(label)
                where = Placement(collection="published", trial_id=trial, site_id=site)
                (out,) = store_many(archive, [data], placement=where)
                assert isinstance(out, StoreOutcome), out
                studies[label] = s
            s, data = _data("L")
            (out,) = store_many(archive, [data])
            assert isinstance(out, StoreOutcome), out
            studies["L"] = s
            s, data = _data("D")
            (out,) = store_for_site(archive, [data], "T1", "S1")
            assert isinstance(out, StoreOutcome), out
            studies["D"] = s
        finally:
            archive.close()
        env = server.env
        cli(env, "ae", "add", "READER1", "127.0.0.1", str(free_port()), "--grant", "reader@T1")
        cli(env, "ae", "add", "UNBOUND", "127.0.0.1", str(free_port()))
        cli(env, "ae", "add", "SITEPACS", "127.0.0.1", str(free_port()), "--site", "S1")
        cli(env, "ae", "add", "DEST", "127.0.0.1", str(dest_port))
        yield World(server, studies, dest_port)


def _assoc(world: World, title: str, **kwargs: object):  # type: ignore[no-untyped-def]
    ae = AE(ae_title=title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    for cx in (
        StudyRootQueryRetrieveInformationModelFind,
        PatientRootQueryRetrieveInformationModelFind,
        StudyRootQueryRetrieveInformationModelMove,
        StudyRootQueryRetrieveInformationModelGet,
    ):
        ae.add_requested_context(cx)
    ae.add_requested_context(MR_STORAGE, [ExplicitVRLittleEndian])
    assoc = ae.associate("127.0.0.1", world.server.port, ae_title=world.server.ae_title, **kwargs)  # type: ignore[arg-type]
    assert assoc.is_established
    return assoc


def found_studies(world: World, title: str) -> set[str]:
    q = Dataset()
    q.QueryRetrieveLevel = "STUDY"
    q.StudyInstanceUID = ""
    assoc = _assoc(world, title)
    try:
        results = list(assoc.send_c_find(q, StudyRootQueryRetrieveInformationModelFind))
    finally:
        assoc.release()
    assert results[-1][0].Status == 0x0000
    return {str(ident.StudyInstanceUID) for status, ident in results[:-1]}


def labels(world: World, uids: set[str]) -> set[str]:
    by_uid = {s.study: label for label, s in world.studies.items()}
    return {by_uid[u] for u in uids if u in by_uid}


def test_find_sees_only_granted_published_studies(world: World) -> None:
    assert labels(world, found_studies(world, "READER1")) == {"A", "B"}
    assert found_studies(world, "UNBOUND") == set()
    assert found_studies(world, "SITEPACS") == set()


def test_find_refused_study_by_uid_and_patient_is_no_match(world: World) -> None:
    for label in ("C", "L", "D"):
        q = Dataset()
        q.QueryRetrieveLevel = "STUDY"
        q.StudyInstanceUID = world.studies[label].study
        assoc = _assoc(world, "READER1")
        try:
            results = list(assoc.send_c_find(q, StudyRootQueryRetrieveInformationModelFind))
            p = Dataset()
            p.QueryRetrieveLevel = "PATIENT"
            p.PatientID = world.studies[label].patient
            patients = list(assoc.send_c_find(p, PatientRootQueryRetrieveInformationModelFind))
        finally:
            assoc.release()
        assert [r[0].Status for r in results] == [0x0000], label
        assert [r[0].Status for r in patients] == [0x0000], label


def test_findscu_reader_never_gets_identified_study(world: World, tmp_path: Path) -> None:
    out = subprocess.run(
        [
            "findscu",
            "-S",
            "-aet",
            "READER1",
            "-aec",
            "TRIALPACS",
            "-k",
            "QueryRetrieveLevel=STUDY",
            "-k",
            "StudyInstanceUID",
            "-k",
            "PatientID",
            "127.0.0.1",
            str(world.server.port),
        ],
        env=dcmtk_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout + out.stderr
    assert world.studies["A"].study in text and world.studies["B"].study in text
    for label in ("C", "L", "D"):
        assert world.studies[label].study not in text
        assert world.studies[label].patient not in text


def _move(world: World, title: str, study: str) -> tuple[int, int, int]:
    q = Dataset()
    q.QueryRetrieveLevel = "STUDY"
    q.StudyInstanceUID = study
    assoc = _assoc(world, title)
    try:
        results = list(assoc.send_c_move(q, "DEST", StudyRootQueryRetrieveInformationModelMove))
    finally:
        assoc.release()
    final = results[-1][0]
    return (
        int(final.Status),
        int(final.get("NumberOfCompletedSuboperations", 0)),
        int(final.get("NumberOfFailedSuboperations", 0)),
    )


def test_move_refused_study_moves_nothing_like_a_missing_one(world: World) -> None:
    scp = StorageSCP("DEST", world.dest_port)
    try:
        assert _move(world, "READER1", world.studies["A"].study) == (0x0000, 1, 0)
        assert set(scp.received) == {world.studies["A"].sop}
        missing = _move(world, "READER1", generate_uid())
        for label in ("C", "L", "D"):
            assert _move(world, "READER1", world.studies[label].study) == missing, label
        for title in ("UNBOUND", "SITEPACS"):
            assert _move(world, title, world.studies["A"].study) == missing, title
        assert set(scp.received) == {world.studies["A"].sop}
    finally:
        scp.stop()


def test_movescu_of_refused_study_sends_nothing(world: World, tmp_path: Path) -> None:
    port = world.dest_port
    args = ["movescu", "-S", "-aet", "UNBOUND", "-aem", "DEST", "-aec", "TRIALPACS"]
    args += ["+P", str(port), "-od", str(tmp_path)]
    # movescu is its own destination here: DEST's port is where it listens.
    out = subprocess.run(
        [
            *args,
            "-k",
            "QueryRetrieveLevel=STUDY",
            "-k",
            f"StudyInstanceUID={world.studies['A'].study}",
            "127.0.0.1",
            str(world.server.port),
        ],
        env=dcmtk_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert list(tmp_path.iterdir()) == []


def _get(world: World, title: str, study: str) -> tuple[int, list[str]]:
    received: list[str] = []

    def on_store(event: evt.Event) -> int:
        received.append(str(event.request.AffectedSOPInstanceUID))
        return 0

    role = build_role(MR_STORAGE, scp_role=True)
    assoc = _assoc(world, title, ext_neg=[role], evt_handlers=[(evt.EVT_C_STORE, on_store)])
    q = Dataset()
    q.QueryRetrieveLevel = "STUDY"
    q.StudyInstanceUID = study
    try:
        results = list(assoc.send_c_get(q, StudyRootQueryRetrieveInformationModelGet))
    finally:
        assoc.release()
    return int(results[-1][0].Status), received


def test_get_only_granted_studies(world: World) -> None:
    assert _get(world, "READER1", world.studies["B"].study) == (0x0000, [world.studies["B"].sop])
    missing = _get(world, "READER1", generate_uid())
    assert missing == (0x0000, [])
    for label in ("C", "L", "D"):
        assert _get(world, "READER1", world.studies[label].study) == missing, label
    assert _get(world, "UNBOUND", world.studies["A"].study) == missing


def test_getscu_refused_study_receives_nothing(world: World, tmp_path: Path) -> None:
    out = subprocess.run(
        [
            "getscu",
            "-S",
            "-aet",
            "READER1",
            "-aec",
            "TRIALPACS",
            "-od",
            str(tmp_path),
            "-k",
            "QueryRetrieveLevel=STUDY",
            "-k",
            f"StudyInstanceUID={world.studies['D'].study}",
            "127.0.0.1",
            str(world.server.port),
        ],
        env=dcmtk_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert list(tmp_path.iterdir()) == []


def test_ae_list_shows_grants_and_remove_forgets_them(world: World) -> None:
    env = world.server.env
    cli(env, "ae", "add", "GONE", "127.0.0.1", "104", "--grant", "reader@T2")
    assert "reader@T2" in cli(env, "ae", "list").stdout
    cli(env, "ae", "remove", "GONE")
    cli(env, "ae", "add", "GONE", "127.0.0.1", "104")
    archive = Archive.open(Settings(data_dir=world.server.live.data_dir), migrate=False)
    try:
        assert peers.grants_of(archive.db, "GONE") == ()
    finally:
        archive.close()
    bad = cli(env, "ae", "add", "BAD", "127.0.0.1", "104", "--grant", "site_pacs@T1", check=False)
    assert bad.returncode == 2 and "bound to one site" in bad.stdout + bad.stderr


def test_principal_of_peers(tmp_path: Path) -> None:
    """A site's AE is its site's PACS; an unknown AE reads the published archive
    only in demo mode and only when the setting says so."""
    settings = Settings(data_dir=tmp_path)
    archive = Archive.open(settings)
    try:
        remote_aes.add(archive.db, "SITE1", "127.0.0.1", 104, site="S1")
        peers.grant(archive.db, "SITE1", "reader@T1")
        site = peers.principal_for(archive.db, settings, "SITE1 ")
        assert set(site.grants) == {Grant("site_pacs", None, "S1"), Grant("reader", "T1")}
        assert site.scopes == frozenset({"dicomweb"})
        assert peers.principal_for(archive.db, settings, "WHO").grants == ()
        half = settings.model_copy(update={"dicom_unknown_ae_read": True})
        assert peers.principal_for(archive.db, half, "WHO").grants == ()
        demo = settings.model_copy(
            update={"dicom_accept_unknown": True, "dicom_unknown_ae_read": True}
        )
        assert peers.principal_for(archive.db, demo, "WHO").grants == (Grant("reader"),)
    finally:
        archive.close()
