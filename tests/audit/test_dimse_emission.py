"""Every DIMSE service the listener answers emits its audit entry.

Generated from the services the running listener has handlers for (like the
route test): a service bound in ``trialpacs.dimse.server`` without a case
here fails. Peers are real: pynetdicom AEs and dcmtk's echoscu/storescu/
findscu on loopback; the actor is the calling AE title and its address.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    MRImageStorage,
    StorageCommitmentPushModel,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from dicomfactory import make_bytes
from support.services import free_port
from trialpacs.archive import Archive
from trialpacs.audit import verify
from trialpacs.audit.chain import Filter, query
from trialpacs.dimse import auditing, peers, remote_aes
from trialpacs.dimse import server as dimse_server
from trialpacs.settings import load_settings

pytestmark = pytest.mark.slow
TITLE = "TRIALPACS"


@dataclass
class World:
    archive: Archive
    port: int
    move_port: int
    study: str
    sop: str
    services: set[str]
    tmp: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    for tool in ("echoscu", "storescu", "findscu"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} not found: apt-get install dcmtk (scripts/apt-packages.txt)")
    tmp = tmp_path_factory.mktemp("dimse-audit")
    archive = Archive.open(load_settings(None, data_dir=tmp / "data"))
    move_port = free_port()
    for title in ("PEER", "DCMTK"):
        remote_aes.add(archive.db, title, "127.0.0.1", free_port())
        peers.grant(archive.db, title, "reader")
    remote_aes.add(archive.db, "MOVEDEST", "127.0.0.1", move_port)
    running = dimse_server.start(archive, port=0)
    running.context.report_sender = lambda known, result: None  # no report listener here
    services = {
        e.name.removeprefix("EVT_").replace("_", "-")
        for e in running.server.get_events()
        if isinstance(e, evt.InterventionEvent)
        and e.name.startswith(("EVT_C_", "EVT_N_"))
        and _ours(running.server.get_handlers(e))
    }
    ds = make_bytes()
    path = tmp / "one.dcm"
    path.write_bytes(ds)
    parsed = dcmread(path)
    try:
        yield World(
            archive,
            running.port,
            move_port,
            str(parsed.StudyInstanceUID),
            str(parsed.SOPInstanceUID),
            services,
            tmp,
        )
    finally:
        running.stop()
        archive.close()


def _ours(bound: Any) -> bool:
    """Bound by trialpacs (pynetdicom binds its own defaults for unhandled services)."""
    handler = bound[0] if isinstance(bound, tuple) else None
    return getattr(handler, "__module__", "").startswith("trialpacs.")


def _assoc(world: World, title: str, contexts: list[str], **kw: Any) -> Any:
    ae = AE(ae_title=title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 20
    for cx in contexts:
        ae.add_requested_context(cx)
    assoc = ae.associate("127.0.0.1", world.port, ae_title=TITLE, **kw)
    assert assoc.is_established
    return assoc


def _study_ident(world: World) -> Dataset:
    ident = Dataset()
    ident.QueryRetrieveLevel = "STUDY"
    ident.StudyInstanceUID = world.study
    return ident


def c_echo(world: World) -> str:
    out = subprocess.run(
        ["echoscu", "-aet", "DCMTK", "-aec", TITLE, "127.0.0.1", str(world.port)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    return "DCMTK"


def c_store(world: World) -> str:
    out = subprocess.run(
        ["storescu", "-aet", "DCMTK", "-aec", TITLE, "127.0.0.1", str(world.port),
         str(world.tmp / "one.dcm")],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return "DCMTK"


def c_find(world: World) -> str:
    ident = Dataset()
    ident.QueryRetrieveLevel = "STUDY"
    ident.StudyInstanceUID = ""
    assoc = _assoc(world, "PEER", [StudyRootQueryRetrieveInformationModelFind])
    try:
        found = [
            ds
            for st, ds in assoc.send_c_find(ident, StudyRootQueryRetrieveInformationModelFind)
            if st and st.Status == 0xFF00
        ]
    finally:
        assoc.release()
    assert [str(d.StudyInstanceUID) for d in found] == [world.study]
    return "PEER"


def c_move(world: World) -> str:
    received: list[str] = []

    def on_store(event: evt.Event) -> int:
        received.append(str(event.request.AffectedSOPInstanceUID))
        return 0

    dest = AE(ae_title="MOVEDEST")
    dest.add_supported_context(MRImageStorage)
    srv = dest.start_server(
        ("127.0.0.1", world.move_port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)]
    )
    try:
        assoc = _assoc(world, "PEER", [StudyRootQueryRetrieveInformationModelMove])
        try:
            list(
                assoc.send_c_move(
                    _study_ident(world), "MOVEDEST", StudyRootQueryRetrieveInformationModelMove
                )
            )
        finally:
            assoc.release()
    finally:
        srv.shutdown()
    assert received == [world.sop]
    return "PEER"


def c_get(world: World) -> str:
    received: list[str] = []

    def on_store(event: evt.Event) -> int:
        received.append(str(event.request.AffectedSOPInstanceUID))
        return 0

    assoc = _assoc(
        world,
        "PEER",
        [StudyRootQueryRetrieveInformationModelGet, MRImageStorage],
        ext_neg=[build_role(MRImageStorage, scp_role=True)],
        evt_handlers=[(evt.EVT_C_STORE, on_store)],
    )
    try:
        list(assoc.send_c_get(_study_ident(world), StudyRootQueryRetrieveInformationModelGet))
    finally:
        assoc.release()
    assert received == [world.sop]
    return "PEER"


def n_action(world: World) -> str:
    request = Dataset()
    request.TransactionUID = generate_uid()
    item = Dataset()
    item.ReferencedSOPClassUID = MRImageStorage
    item.ReferencedSOPInstanceUID = world.sop
    request.ReferencedSOPSequence = [item]
    assoc = _assoc(world, "PEER", [StorageCommitmentPushModel])
    try:
        st, _ = assoc.send_n_action(
            request, 1, StorageCommitmentPushModel, "1.2.840.10008.1.20.1.1"
        )
    finally:
        assoc.release()
    assert st.Status == 0
    return "PEER"


# Order matters: C-STORE first puts the study there for the retrieves.
CASES: dict[str, Callable[[World], str]] = {
    "C-ECHO": c_echo,
    "C-STORE": c_store,
    "C-FIND": c_find,
    "C-MOVE": c_move,
    "C-GET": c_get,
    "N-ACTION": n_action,
}


def test_every_dimse_service_has_a_case(world: World) -> None:
    """A service the listener answers but this test does not exercise fails here."""
    assert world.services == set(CASES), "add the new DIMSE service to CASES and ACTIONS"
    assert set(CASES) <= set(auditing.ACTIONS)


def test_every_dimse_service_emits_its_entry(world: World) -> None:
    missing = []
    for service, run in CASES.items():
        before = len(query(world.archive.db))
        title = run(world)
        new = query(world.archive.db)[before:]
        mine = [e for e in new if e["action"] == auditing.ACTIONS[service]]
        if not mine:
            missing.append(service)
            continue
        e = mine[-1]
        assert e["actor"] == f"ae:{title}" and e["address"] == "127.0.0.1", e
        assert e["agent"] == f"AE {title} -> {TITLE}"
        assert e["outcome"] == "success", e
        if service in ("C-STORE", "C-FIND", "C-MOVE", "C-GET"):
            assert e["study"] == world.study, e  # who stored / saw which study
    assert missing == []
    store = query(world.archive.db, Filter(action="dimse.C-STORE"))[-1]
    assert store["sop"] == world.sop and '"instances":1' in store["detail"]
    assert verify(world.archive.db).ok


def test_refusals_are_audited(world: World) -> None:
    # Unknown calling AE: the association is rejected, and that is an entry.
    ae = AE(ae_title="STRANGER")
    ae.acse_timeout = ae.network_timeout = 10
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", world.port, ae_title=TITLE)
    assert not assoc.is_established
    rejected = query(world.archive.db, Filter(action="dimse.A-ASSOCIATE"))[-1]
    assert rejected["actor"] == "ae:STRANGER" and rejected["outcome"] == "denied"
    # C-MOVE to a destination not in the known-AE table.
    assoc = _assoc(world, "PEER", [StudyRootQueryRetrieveInformationModelMove])
    try:
        list(
            assoc.send_c_move(
                _study_ident(world), "NOWHERE", StudyRootQueryRetrieveInformationModelMove
            )
        )
    finally:
        assoc.release()
    move = query(world.archive.db, Filter(action="dimse.C-MOVE"))[-1]
    assert move["outcome"] == "failure" and move["object"] == "destination=NOWHERE"
    # A C-STORE the archive refuses: same SOP Instance UID, other content.
    ds = dcmread(world.tmp / "one.dcm")
    ds.PatientName = "OTHER^NAME"
    assoc = _assoc(world, "PEER", [MRImageStorage])
    try:
        st = assoc.send_c_store(ds)
    finally:
        assoc.release()
    assert st.Status != 0
    failed = query(world.archive.db, Filter(action="dimse.C-STORE"))[-1]
    assert failed["outcome"] == "failure" and failed["actor"] == "ae:PEER"
