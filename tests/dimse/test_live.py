"""Every DIMSE service against a live ``trialpacs serve``, with dcmtk and pynetdicom peers.

What the server holds is compared with what pydicom reads from the original
files in the shared corpus.
"""

from __future__ import annotations

import csv
import io
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, build_role, evt
from pynetdicom.presentation import AllStoragePresentationContexts
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelMove,
    StorageCommitmentPushModel,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from dimse.conftest import DimseServer, cli, dcmtk_env, dimse_archive
from trialpacs.archive import Archive
from trialpacs.dicom.parse import parse_part10
from trialpacs.index import lookup
from trialpacs.settings import Settings

pytestmark = pytest.mark.slow

# dcmtk 3.6.7 cannot read this file's pixel data element (odd length OW).
DCMTK_UNREADABLE = {"ct/explicit_VR-UN.dcm"}
# storescu proposes uncompressed syntaxes unless told: the option per file syntax.
STORESCU_PROPOSE = {
    "1.2.840.10008.1.2.4.90": "-xv",
    "1.2.840.10008.1.2.4.91": "-xw",
}


PADDING = 0xFFFCFFFC


def corpus(testdata: Path) -> list[dict[str, str]]:
    with (testdata / "index.csv").open() as fh:
        return list(csv.DictReader(fh))


def open_archive(server: DimseServer) -> Archive:
    return Archive.open(Settings(data_dir=server.live.data_dir), migrate=False)


def stored_bytes(server: DimseServer, sop_uid: str) -> bytes | None:
    archive = open_archive(server)
    try:
        with archive.db.read() as session:
            refs = lookup.instances(session, sop_uid=sop_uid)
        return archive.store.get(refs[0].blob_key) if refs else None
    finally:
        archive.close()


def same_content(original: Path | bytes, stored: bytes) -> None:
    """Every element of the original's data set is stored unchanged."""
    a = dcmread(original if isinstance(original, Path) else io.BytesIO(original))
    b = dcmread(io.BytesIO(stored))
    ts_a, ts_b = a.file_meta.TransferSyntaxUID, b.file_meta.TransferSyntaxUID
    # A retrieving peer may pick another uncompressed syntax (lossless);
    # compressed data must arrive as stored.
    assert ts_a == ts_b or not (ts_a.is_compressed or ts_b.is_compressed)
    check_vr = not (ts_a.is_implicit_VR or ts_b.is_implicit_VR)
    # Data Set Trailing Padding has no meaning and dcmtk drops it when sending.
    tags_a = [e.tag for e in a if e.tag != PADDING]
    tags_b = [e.tag for e in b if e.tag != PADDING]
    assert tags_a == tags_b
    for elem in a:
        if elem.tag == PADDING:
            continue
        other = b[elem.tag]
        if check_vr:
            assert elem.VR == other.VR, elem.tag
        if other.VR == "UN" and elem.VR != "UN":
            continue  # private tag sent implicit: the receiver cannot know its VR
        assert elem.value == other.value, elem.tag


def pyscu(title: str = "PYSCU") -> AE:
    ae = AE(ae_title=title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    return ae


def associate(server: DimseServer, ae: AE, **kwargs: object):  # type: ignore[no-untyped-def]
    assoc = ae.associate("127.0.0.1", server.port, ae_title=server.ae_title, **kwargs)  # type: ignore[arg-type]
    assert assoc.is_established
    return assoc


@pytest.fixture(scope="module")
def loaded(dimse_server: DimseServer, testdata: Path) -> list[dict[str, str]]:
    """The whole corpus stored with storescu (every file dcmtk can read)."""
    rows = corpus(testdata)
    by_syntax: dict[str, list[str]] = {}
    for row in rows:
        if row["path"] not in DCMTK_UNREADABLE:
            by_syntax.setdefault(row["transfer_syntax"], []).append(str(testdata / row["path"]))
    for syntax, files in by_syntax.items():
        opts = [STORESCU_PROPOSE[syntax]] if syntax in STORESCU_PROPOSE else []
        out = subprocess.run(
            [
                "storescu",
                "-R",
                *opts,
                "-aet",
                "STORESCU",
                "-aec",
                "TRIALPACS",
                "127.0.0.1",
                str(dimse_server.port),
                *files,
            ],
            env=dcmtk_env(),
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stderr
    return [r for r in rows if r["path"] not in DCMTK_UNREADABLE]


# -- verification and admission ----------------------------------------------------


def test_echo_dcmtk_and_cli(dimse_server: DimseServer) -> None:
    out = subprocess.run(
        ["echoscu", "-aet", "ECHOSCU", "-aec", "TRIALPACS", "127.0.0.1", str(dimse_server.port)],
        env=dcmtk_env(),
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    res = cli(dimse_server.env, "echo", dimse_server.address(), "--ae-title", "PYSCU")
    assert "success" in res.stdout


def test_unknown_ae_is_rejected(dimse_server: DimseServer) -> None:
    out = subprocess.run(
        ["echoscu", "-aet", "STRANGER", "-aec", "TRIALPACS", "127.0.0.1", str(dimse_server.port)],
        env=dcmtk_env(),
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0
    assert "Calling AE Title Not Recognized" in out.stderr
    res = cli(
        dimse_server.env, "echo", dimse_server.address(), "--ae-title", "STRANGER", check=False
    )
    assert res.returncode == 1
    assert "rejected" in res.stderr


def test_known_title_from_wrong_host_is_rejected(dimse_server: DimseServer) -> None:
    cli(dimse_server.env, "ae", "add", "FARAWAY", "127.0.0.2", "104")
    ae = pyscu("FARAWAY")
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate("127.0.0.1", dimse_server.port, ae_title="TRIALPACS")
    assert assoc.is_rejected
    listed = cli(dimse_server.env, "ae", "list").stdout
    assert "FARAWAY" in listed and "127.0.0.2" in listed
    cli(dimse_server.env, "ae", "remove", "FARAWAY")
    assert "FARAWAY" not in cli(dimse_server.env, "ae", "list").stdout


# -- storage ---------------------------------------------------------------------


def test_storescu_stores_every_instance_unchanged(
    dimse_server: DimseServer, loaded: list[dict[str, str]], testdata: Path
) -> None:
    for row in loaded:
        stored = stored_bytes(dimse_server, row["sop_instance_uid"])
        assert stored is not None, row["path"]
        same_content(testdata / row["path"], stored)


def test_send_cli_stores_whole_corpus(
    tmp_path_factory: pytest.TempPathFactory, testdata: Path
) -> None:
    """``trialpacs send`` to a fresh archive: every file arrives byte for byte."""
    with dimse_archive(tmp_path_factory) as server:
        res = cli(
            server.env, "send", str(testdata), "--to", server.address(), "--ae-title", "PYSCU"
        )
        rows = corpus(testdata)
        assert f"sent {len(rows)} of {len(rows)} DICOM file(s)" in res.stdout
        for row in rows:
            stored = stored_bytes(server, row["sop_instance_uid"])
            assert stored is not None, row["path"]
            original = (testdata / row["path"]).read_bytes()
            # Only the file meta header is ours; the data set is what was sent.
            assert stored.endswith(original[_meta_end(original) :])
        again = cli(
            server.env, "send", str(testdata), "--to", server.address(), "--ae-title", "PYSCU"
        )
        assert "sent 52 of 52" in again.stdout or f"sent {len(rows)}" in again.stdout


def _meta_end(data: bytes) -> int:
    group_length = int.from_bytes(data[140:144], "little")
    return 144 + group_length


def _ct(**overrides: object) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = "MALFORMED"
    ds.Modality = "CT"
    ds.Rows = ds.Columns = 4
    ds.SamplesPerPixel = 1
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = b"\x00" * 32
    for key, value in overrides.items():
        if value is None:
            delattr(ds, key)
        else:
            setattr(ds, key, value)
    return ds


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"StudyInstanceUID": None}, "StudyInstanceUID"),
        ({"SeriesInstanceUID": "1.2.bad..uid"}, "SeriesInstanceUID"),
        ({"PixelData": b"\x00" * 8}, "pixel data is truncated"),
    ],
)
def test_malformed_dataset_gets_failure_and_nothing_stored(
    dimse_server: DimseServer, overrides: dict[str, object], needle: str
) -> None:
    ds = _ct(**overrides)
    ae = pyscu()
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    assoc = associate(dimse_server, ae)
    try:
        rsp = assoc.send_c_store(ds)
    finally:
        assoc.release()
    assert rsp.Status == 0xC000
    assert needle in rsp.ErrorComment
    assert stored_bytes(dimse_server, ds.SOPInstanceUID) is None


def _big_ct_files(directory: Path, count: int) -> list[Path]:
    import numpy as np

    study, series = generate_uid(), generate_uid()
    files = []
    rng = np.random.default_rng(7)
    for n in range(count):
        ds = _ct(StudyInstanceUID=study, SeriesInstanceUID=series, PatientID="INTERRUPT")
        ds.Rows = ds.Columns = 512
        ds.InstanceNumber = n + 1
        ds.PixelData = rng.integers(0, 4096, 512 * 512, dtype=np.uint16).tobytes()
        path = directory / f"ct{n:04d}.dcm"
        ds.save_as(path, enforce_file_format=True, implicit_vr=False, little_endian=True)
        files.append(path)
    return files


def test_interrupted_storescu_leaves_only_complete_instances(
    dimse_server: DimseServer, tmp_path: Path
) -> None:
    files = _big_ct_files(tmp_path, 300)
    uids = [dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in files]
    blobs = dimse_server.live.data_dir / "blobs"
    before = sum(1 for _ in blobs.rglob("*.dcm"))
    proc = subprocess.Popen(
        [
            "storescu",
            "-R",
            "-aet",
            "STORESCU",
            "-aec",
            "TRIALPACS",
            "127.0.0.1",
            str(dimse_server.port),
            *map(str, files),
        ],
        env=dcmtk_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Kill it once some (not all) instances are in, most likely mid-PDU.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if sum(1 for _ in blobs.rglob("*.dcm")) - before >= 20:
            break
        time.sleep(0.005)
    assert proc.poll() is None, "storescu finished before it could be interrupted"
    proc.kill()
    proc.wait()
    time.sleep(1.0)  # let the server notice the dead association
    archive = open_archive(dimse_server)
    try:
        with archive.db.read() as session:
            refs = lookup.instances(session, sop_uids=uids)
        assert 0 < len(refs) < len(uids)
        for ref in refs:
            parsed = parse_part10(archive.store.get(ref.blob_key))
            original = files[uids.index(ref.sop_uid)].read_bytes()
            same_content(original, parsed.data)
        blobs_dir = archive.settings.resolved_storage_dir()
        partials = list(blobs_dir.rglob(".tmp-*"))
        assert partials == []
        stored_keys = set(archive.store.keys())
        assert {r.blob_key for r in refs} <= stored_keys
        on_disk = {k for k in stored_keys if any(u in k for u in uids)}
        assert on_disk == {r.blob_key for r in refs}
    finally:
        archive.close()


# -- query -----------------------------------------------------------------------


def c_find(server: DimseServer, model: str, ident: Dataset) -> list[Dataset]:
    ae = pyscu("FINDSCU")
    ae.add_requested_context(model)
    assoc = associate(server, ae)
    out = []
    try:
        for status, identifier in assoc.send_c_find(ident, model):
            assert status.Status in (0xFF00, 0xFF01, 0x0000), hex(status.Status)
            if status.Status in (0xFF00, 0xFF01):
                out.append(identifier)
    finally:
        assoc.release()
    return out


def test_find_study_root_every_level(
    dimse_server: DimseServer, loaded: list[dict[str, str]], testdata: Path
) -> None:
    series_rows = [r for r in loaded if r["path"].startswith("mr-brain-series/")]
    first = dcmread(testdata / series_rows[0]["path"], stop_before_pixels=True)
    model = StudyRootQueryRetrieveInformationModelFind

    q = Dataset()
    q.QueryRetrieveLevel = "STUDY"
    q.PatientID = first.PatientID
    q.StudyInstanceUID = ""
    q.PatientName = ""
    q.StudyDate = ""
    q.NumberOfStudyRelatedInstances = ""
    q.ModalitiesInStudy = ""
    studies = c_find(dimse_server, model, q)
    assert [s.StudyInstanceUID for s in studies] == [first.StudyInstanceUID]
    assert str(studies[0].PatientName) == str(first.PatientName)
    assert studies[0].StudyDate == first.StudyDate
    assert int(studies[0].NumberOfStudyRelatedInstances) == len(series_rows)
    assert "MR" in studies[0].ModalitiesInStudy
    # Only the requested keys come back.
    assert set(studies[0].dir()) == set(q.dir())

    q = Dataset()
    q.QueryRetrieveLevel = "SERIES"
    q.StudyInstanceUID = first.StudyInstanceUID
    q.SeriesInstanceUID = ""
    q.Modality = ""
    q.SeriesNumber = ""
    series = c_find(dimse_server, model, q)
    assert [s.SeriesInstanceUID for s in series] == [first.SeriesInstanceUID]
    assert series[0].Modality == "MR"

    q = Dataset()
    q.QueryRetrieveLevel = "IMAGE"
    q.StudyInstanceUID = first.StudyInstanceUID
    q.SeriesInstanceUID = first.SeriesInstanceUID
    q.SOPInstanceUID = ""
    q.InstanceNumber = ""
    q.SliceThickness = ""  # not indexed: answered from the stored metadata
    images = c_find(dimse_server, model, q)
    assert sorted(i.SOPInstanceUID for i in images) == sorted(
        r["sop_instance_uid"] for r in series_rows
    )
    originals = {
        r["sop_instance_uid"]: dcmread(testdata / r["path"], stop_before_pixels=True)
        for r in series_rows
    }
    for image in images:
        original = originals[image.SOPInstanceUID]
        assert image.InstanceNumber == original.InstanceNumber
        assert image.SliceThickness == original.get("SliceThickness")


def test_find_wildcards_and_ranges_match_qido(
    dimse_server: DimseServer, loaded: list[dict[str, str]]
) -> None:
    import httpx

    q = Dataset()
    q.QueryRetrieveLevel = "STUDY"
    q.StudyDate = "20000101-20101231"
    q.PatientName = "*"
    q.StudyInstanceUID = ""
    dimse = {
        s.StudyInstanceUID
        for s in c_find(dimse_server, StudyRootQueryRetrieveInformationModelFind, q)
    }
    rsp = httpx.get(
        dimse_server.live.dicomweb + "/studies",
        params={"StudyDate": "20000101-20101231", "PatientName": "*"},
        headers=dimse_server.live.headers(),
    )
    rsp.raise_for_status()
    qido = {s["0020000D"]["Value"][0] for s in rsp.json()}
    assert dimse == qido
    assert dimse


def test_find_patient_root(
    dimse_server: DimseServer, loaded: list[dict[str, str]], testdata: Path
) -> None:
    rows = [r for r in loaded if r["path"].startswith("mr-prostate-adc/")]
    original = dcmread(testdata / rows[0]["path"], stop_before_pixels=True)
    model = PatientRootQueryRetrieveInformationModelFind
    q = Dataset()
    q.QueryRetrieveLevel = "PATIENT"
    q.PatientID = original.PatientID
    q.PatientName = ""
    q.PatientSex = ""
    q.NumberOfPatientRelatedStudies = ""
    q.NumberOfPatientRelatedInstances = ""
    patients = c_find(dimse_server, model, q)
    assert len(patients) == 1
    assert patients[0].PatientID == original.PatientID
    assert str(patients[0].PatientName) == str(original.PatientName)
    assert int(patients[0].NumberOfPatientRelatedInstances) == len(rows)

    q = Dataset()
    q.QueryRetrieveLevel = "STUDY"
    q.PatientID = original.PatientID
    q.StudyInstanceUID = ""
    studies = c_find(dimse_server, model, q)
    assert {s.StudyInstanceUID for s in studies} == {original.StudyInstanceUID}


def test_findscu(dimse_server: DimseServer, loaded: list[dict[str, str]], tmp_path: Path) -> None:
    out = subprocess.run(
        [
            "findscu",
            "-S",
            "-aet",
            "FINDSCU",
            "-aec",
            "TRIALPACS",
            "-X",
            "-od",
            str(tmp_path),
            "-k",
            "QueryRetrieveLevel=STUDY",
            "-k",
            "StudyInstanceUID",
            "-k",
            "PatientID",
            "127.0.0.1",
            str(dimse_server.port),
        ],
        env=dcmtk_env(),
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    found = {dcmread(p, force=True).StudyInstanceUID for p in tmp_path.glob("rsp*.dcm")}
    # Other tests add studies of their own; the corpus must all be there.
    assert found >= {r["study_uid"] for r in loaded}


def test_find_bad_identifier_fails_with_comment(dimse_server: DimseServer) -> None:
    q = Dataset()
    q.QueryRetrieveLevel = "SERIES"
    q.SeriesInstanceUID = "not-a-uid"
    ae = pyscu("FINDSCU")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = associate(dimse_server, ae)
    try:
        results = list(assoc.send_c_find(q, StudyRootQueryRetrieveInformationModelFind))
    finally:
        assoc.release()
    status = results[-1][0]
    assert status.Status == 0xA900
    assert "not a valid UID" in status.ErrorComment


# -- retrieve --------------------------------------------------------------------


class StorageSCP:
    """A pynetdicom C-STORE SCP that keeps what it receives (a C-MOVE destination)."""

    def __init__(self, title: str, port: int) -> None:
        self.received: dict[str, bytes] = {}
        self.lock = threading.Lock()
        self.ae = AE(ae_title=title)
        for cx in AllStoragePresentationContexts:
            self.ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        self.server = self.ae.start_server(
            ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, self.on_store)]
        )

    def on_store(self, event: evt.Event) -> int:
        buf = io.BytesIO()
        buf.write(event.encoded_dataset())
        with self.lock:
            self.received[str(event.request.AffectedSOPInstanceUID)] = buf.getvalue()
        return 0

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture
def move_destination(dimse_server: DimseServer) -> Iterator[StorageSCP]:
    scp = StorageSCP("MOVESCU", dimse_server.move_port)
    yield scp
    scp.stop()


def test_move_study_to_known_destination(
    dimse_server: DimseServer,
    loaded: list[dict[str, str]],
    testdata: Path,
    move_destination: StorageSCP,
) -> None:
    rows = [r for r in loaded if r["path"].startswith("mr-prostate-adc/")]
    q = Dataset()
    q.QueryRetrieveLevel = "STUDY"
    q.StudyInstanceUID = rows[0]["study_uid"]
    ae = pyscu()
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    assoc = associate(dimse_server, ae)
    try:
        results = list(assoc.send_c_move(q, "MOVESCU", StudyRootQueryRetrieveInformationModelMove))
    finally:
        assoc.release()
    final = results[-1][0]
    assert final.Status == 0x0000
    assert final.NumberOfCompletedSuboperations == len(rows)
    assert set(move_destination.received) == {r["sop_instance_uid"] for r in rows}
    for row in rows:
        same_content(
            testdata / row["path"], _as_part10(move_destination.received[row["sop_instance_uid"]])
        )


def _as_part10(encoded: bytes) -> bytes:
    # encoded_dataset() is preamble + meta + data set since pynetdicom 2.0
    return encoded


def test_movescu_series_and_jpeg2000(
    dimse_server: DimseServer, loaded: list[dict[str, str]], testdata: Path, tmp_path: Path
) -> None:
    """movescu as its own destination (+P) for a series, and a JPEG 2000 image
    moved in its stored syntax."""
    targets = [
        r for r in loaded if r["path"].startswith("mr-brain-series/") or r["path"].startswith("cr/")
    ]
    series = {r["series_uid"] for r in targets}
    args = ["movescu", "-S", "-aet", "MOVESCU", "-aem", "MOVESCU", "-aec", "TRIALPACS"]
    args += ["+P", str(dimse_server.move_port), "-od", str(tmp_path), "+xa"]
    args += ["-k", "QueryRetrieveLevel=SERIES"]
    args += ["-k", "SeriesInstanceUID=" + "\\".join(sorted(series))]
    out = subprocess.run(
        [*args, "127.0.0.1", str(dimse_server.port)],
        env=dcmtk_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    received = {dcmread(p, stop_before_pixels=True).SOPInstanceUID: p for p in tmp_path.iterdir()}
    assert set(received) == {r["sop_instance_uid"] for r in targets}
    for row in targets:
        same_content(testdata / row["path"], received[row["sop_instance_uid"]].read_bytes())


def test_move_to_unknown_destination_fails(
    dimse_server: DimseServer, loaded: list[dict[str, str]]
) -> None:
    q = Dataset()
    q.QueryRetrieveLevel = "STUDY"
    q.StudyInstanceUID = loaded[0]["study_uid"]
    ae = pyscu()
    ae.add_requested_context(PatientRootQueryRetrieveInformationModelMove)
    assoc = associate(dimse_server, ae)
    try:
        results = list(
            assoc.send_c_move(q, "NOWHERE", PatientRootQueryRetrieveInformationModelMove)
        )
    finally:
        assoc.release()
    assert results[-1][0].Status == 0xA801


def test_getscu_study(
    dimse_server: DimseServer, loaded: list[dict[str, str]], testdata: Path, tmp_path: Path
) -> None:
    rows = [r for r in loaded if r["path"].startswith("mr-brain-series/")]
    out = subprocess.run(
        [
            "getscu",
            "-S",
            "-aet",
            "GETSCU",
            "-aec",
            "TRIALPACS",
            "-od",
            str(tmp_path),
            "-k",
            "QueryRetrieveLevel=STUDY",
            "-k",
            f"StudyInstanceUID={rows[0]['study_uid']}",
            "127.0.0.1",
            str(dimse_server.port),
        ],
        env=dcmtk_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    received = {dcmread(p, stop_before_pixels=True).SOPInstanceUID: p for p in tmp_path.iterdir()}
    assert set(received) == {r["sop_instance_uid"] for r in rows}
    for row in rows:
        same_content(testdata / row["path"], received[row["sop_instance_uid"]].read_bytes())


def test_get_compressed_for_peer_without_that_syntax(
    dimse_server: DimseServer, loaded: list[dict[str, str]], testdata: Path
) -> None:
    """A peer that only takes uncompressed data gets the JPEG 2000 image decompressed."""
    row = next(r for r in loaded if r["transfer_syntax"] == "1.2.840.10008.1.2.4.90")
    received: list[Dataset] = []

    def on_store(event: evt.Event) -> int:
        ds = event.dataset
        ds.file_meta = event.file_meta
        received.append(ds)
        return 0

    ae = pyscu("GETSCU")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(row["sop_class_uid"], [ExplicitVRLittleEndian])
    role = build_role(row["sop_class_uid"], scp_role=True)
    assoc = associate(dimse_server, ae, ext_neg=[role], evt_handlers=[(evt.EVT_C_STORE, on_store)])
    q = Dataset()
    q.QueryRetrieveLevel = "IMAGE"
    q.SOPInstanceUID = row["sop_instance_uid"]
    try:
        results = list(assoc.send_c_get(q, StudyRootQueryRetrieveInformationModelGet))
    finally:
        assoc.release()
    assert results[-1][0].Status == 0x0000
    assert len(received) == 1
    original = dcmread(testdata / row["path"])
    assert (received[0].pixel_array == original.pixel_array).all()


# -- storage commitment ------------------------------------------------------------


def test_storage_commitment_reports_held_and_missing(
    dimse_server: DimseServer, loaded: list[dict[str, str]]
) -> None:
    reports: list[tuple[int, Dataset]] = []
    got = threading.Event()

    def on_report(event: evt.Event) -> int:
        reports.append((event.event_type, event.event_information))
        got.set()
        return 0

    listener = AE(ae_title="COMMITSCU")
    listener.add_supported_context(StorageCommitmentPushModel, scu_role=True, scp_role=True)
    server = listener.start_server(
        ("127.0.0.1", dimse_server.commit_port),
        block=False,
        evt_handlers=[(evt.EVT_N_EVENT_REPORT, on_report)],
    )
    try:
        held = loaded[:2]
        missing_uid = generate_uid()
        request = Dataset()
        request.TransactionUID = generate_uid()
        items = []
        for sop_class, sop_uid in [(r["sop_class_uid"], r["sop_instance_uid"]) for r in held] + [
            (CTImageStorage, missing_uid)
        ]:
            item = Dataset()
            item.ReferencedSOPClassUID = sop_class
            item.ReferencedSOPInstanceUID = sop_uid
            items.append(item)
        request.ReferencedSOPSequence = items
        ae = pyscu("COMMITSCU")
        ae.add_requested_context(StorageCommitmentPushModel)
        assoc = associate(dimse_server, ae)
        try:
            status, _ = assoc.send_n_action(
                request, 1, StorageCommitmentPushModel, "1.2.840.10008.1.20.1.1"
            )
        finally:
            assoc.release()
        assert status.Status == 0x0000
        assert got.wait(20), "no N-EVENT-REPORT arrived"
    finally:
        server.shutdown()
    event_type, info = reports[0]
    assert event_type == 2
    assert info.TransactionUID == request.TransactionUID
    assert {i.ReferencedSOPInstanceUID for i in info.ReferencedSOPSequence} == {
        r["sop_instance_uid"] for r in held
    }
    failed = info.FailedSOPSequence
    assert [(f.ReferencedSOPInstanceUID, f.FailureReason) for f in failed] == [
        (missing_uid, 0x0112)
    ]
