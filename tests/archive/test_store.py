"""The store path: idempotency, conflicts, overwrite, and nothing half-written."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from dicomfactory import make_bytes, make_dataset, to_bytes
from trialpacs.archive import Archive
from trialpacs.errors import Conflict, InvalidInput
from trialpacs.index.models import Instance, Series, Study
from trialpacs.ingest.store import StoreStatus, store_bytes
from trialpacs.settings import Settings


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    a = Archive.open(Settings(data_dir=tmp_path))
    yield a
    a.close()


def blobs(archive: Archive) -> list[str]:
    return list(archive.store.keys())


def count(archive: Archive, model: type) -> int:
    with archive.db.read() as s:
        return int(s.execute(select(func.count()).select_from(model)).scalar_one())


def test_store_then_same_bytes_is_idempotent(archive: Archive) -> None:
    data = make_bytes()
    assert store_bytes(archive, data).status is StoreStatus.STORED
    assert store_bytes(archive, data).status is StoreStatus.DUPLICATE
    assert count(archive, Instance) == 1
    assert len(blobs(archive)) == 1


def test_stored_file_has_zero_preamble(archive: Archive) -> None:
    store_bytes(archive, make_bytes())
    (key,) = blobs(archive)
    assert archive.store.get(key)[:132] == b"\x00" * 128 + b"DICM"


def test_other_bytes_same_uid_is_refused_and_original_kept(archive: Archive) -> None:
    ds = make_dataset(value=1)
    first = to_bytes(ds)
    store_bytes(archive, first)
    other = make_dataset(
        sop=ds.SOPInstanceUID, study=ds.StudyInstanceUID, series=ds.SeriesInstanceUID, value=9
    )
    with pytest.raises(Conflict, match="different content"):
        store_bytes(archive, to_bytes(other))
    (key,) = blobs(archive)
    assert archive.store.get(key)[128:] == first[128:]


def test_overwrite_replaces_bytes_and_removes_old_blob(tmp_path: Path) -> None:
    archive = Archive.open(Settings(data_dir=tmp_path, overwrite=True))
    ds = make_dataset(value=1)
    store_bytes(archive, to_bytes(ds))
    other = make_dataset(
        sop=ds.SOPInstanceUID, study=ds.StudyInstanceUID, series=ds.SeriesInstanceUID, value=9
    )
    new = to_bytes(other)
    assert store_bytes(archive, new).status is StoreStatus.REPLACED
    (key,) = blobs(archive)
    assert archive.store.get(key)[128:] == new[128:]
    assert count(archive, Instance) == 1
    archive.close()


def test_same_uid_in_other_series_is_refused_even_with_overwrite(tmp_path: Path) -> None:
    archive = Archive.open(Settings(data_dir=tmp_path, overwrite=True))
    ds = make_dataset()
    store_bytes(archive, to_bytes(ds))
    moved = make_dataset(sop=ds.SOPInstanceUID, study=ds.StudyInstanceUID, value=3)
    with pytest.raises(Conflict, match="another study/series"):
        store_bytes(archive, to_bytes(moved))
    archive.close()


def test_counters_and_modalities(archive: Archive) -> None:
    study = "1.2.826.0.1.3680043.8.498.77"
    for i in range(3):
        store_bytes(archive, make_bytes(study=study, series="1.2.3.1", instance_number=i))
    store_bytes(archive, make_bytes(study=study, series="1.2.3.2", modality="CT"))
    with archive.db.read() as s:
        row = s.execute(select(Study).where(Study.study_uid == study)).scalar_one()
        assert (row.num_series, row.num_instances, row.modalities) == (2, 4, "\\CT\\MR\\")
        series = s.execute(select(Series).where(Series.series_uid == "1.2.3.1")).scalar_one()
        assert series.num_instances == 3


def test_failed_index_write_leaves_no_blob(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trialpacs.index import writer

    def boom(*args: object, **kwargs: object) -> bool:
        raise RuntimeError("database went away")

    monkeypatch.setattr(writer, "insert_instances", boom)
    with pytest.raises(RuntimeError):
        store_bytes(archive, make_bytes())
    assert blobs(archive) == []
    assert count(archive, Instance) == 0


def test_invalid_input_touches_nothing(archive: Archive) -> None:
    store_bytes(archive, make_bytes())
    before = blobs(archive)
    with pytest.raises(InvalidInput):
        store_bytes(archive, b"garbage" * 100)
    assert blobs(archive) == before


def test_study_mismatch_is_refused(archive: Archive) -> None:
    with pytest.raises(InvalidInput, match="does not match the study"):
        store_bytes(archive, make_bytes(), expected_study="1.2.3")
    assert count(archive, Instance) == 0


def test_local_store_cleans_partial_writes(tmp_path: Path) -> None:
    from trialpacs.storage.local import LocalStore

    store = LocalStore(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / ".tmp-x.part").write_bytes(b"half")
    assert store.cleanup_partials() == 1
    with pytest.raises(ValueError):
        store.put("../escape", b"x")
    with pytest.raises(ValueError):
        store.put("/etc/passwd", b"x")


def test_concurrent_stores_of_one_study(archive: Archive) -> None:
    from concurrent.futures import ThreadPoolExecutor

    study, series = "1.2.826.0.1.3680043.8.498.99", "1.2.826.0.1.3680043.8.498.99.1"
    payloads = [make_bytes(study=study, series=series, instance_number=i) for i in range(20)]
    payloads += payloads[:5]  # duplicates racing their originals
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda d: store_bytes(archive, d), payloads))
    assert sum(r.status is StoreStatus.STORED for r in results) == 20
    with archive.db.read() as s:
        row = s.execute(select(Study).where(Study.study_uid == study)).scalar_one()
        assert (row.num_series, row.num_instances) == (1, 20)
    assert len(blobs(archive)) == 20


def test_group_committer_shares_commits_between_threads(archive: Archive) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from trialpacs.dicom.parse import parse_part10
    from trialpacs.ingest.commit import committer_for

    study = "1.2.826.0.1.3680043.8.498.123"
    parsed = [
        parse_part10(make_bytes(study=study, series="1.2.3.9", instance_number=i))
        for i in range(30)
    ]
    committer = committer_for(archive)
    assert committer_for(archive) is committer
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(committer.store, parsed))
    assert all(o.status is StoreStatus.STORED for o in outcomes)
    with pytest.raises(Conflict):
        clash = make_dataset(
            sop=parsed[0].sop_instance_uid, study=study, series="1.2.3.9", value=99
        )
        committer.store(parse_part10(to_bytes(clash)))
    with archive.db.read() as s:
        row = s.execute(select(Study).where(Study.study_uid == study)).scalar_one()
        assert row.num_instances == 30


def test_resend_with_other_meta_header_is_a_duplicate(archive: Archive, testdata: Path) -> None:
    import io

    import pydicom

    data = (testdata / "ct" / "CT1_UNC.dcm").read_bytes()
    assert store_bytes(archive, data).status is StoreStatus.STORED
    ds = pydicom.dcmread(io.BytesIO(data))
    del ds.DataSetTrailingPadding
    ds.file_meta.SourceApplicationEntityTitle = "RESENDER"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    assert store_bytes(archive, buf.getvalue()).status is StoreStatus.DUPLICATE
