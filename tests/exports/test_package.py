"""Export packages: layout, determinism, resume, governance, audit, NIfTI geometry."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import time
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pyarrow.parquet as pq
import pydicom
import pytest

from exports.support import (
    DATA_MANAGER,
    World,
    build_world,
    corpus_files,
    store_published,
    who,
)
from support.services import postgres_database
from trialpacs.audit import verify
from trialpacs.audit.chain import Filter, query
from trialpacs.exports.cohort import CohortDefinition
from trialpacs.exports.destinations import STAGING_KEEP_SECONDS, staging_dir
from trialpacs.exports.governance import ExportRefused
from trialpacs.exports.job import (
    ExportOptions,
    IdentifiedDataRefused,
    InstanceRow,
    export_history,
    published_bytes,
    run_export,
)
from trialpacs.exports.nifti import dicom_geometry, geometry_problems, nifti_geometry
from trialpacs.exports.saved import save_cohort
from trialpacs.index.lookup import instances

MANIFESTS = ("manifest.csv", "manifest.parquet", "datasheet.json", "datasheet.md", "README.md",
             "cohort.json", "SHA256SUMS")  # fmt: skip


def save(world: World, name: str = "all", **kw: object) -> str:
    return save_cohort(
        world.archive.db, name, CohortDefinition.from_mapping({"trial": "T1", **kw}), "dm"
    ).ref


def test_package_layout_and_self_description(world: World, tmp_path: Path) -> None:
    ref = save(world)
    out = tmp_path / "pkg"
    result = run_export(world.archive, DATA_MANAGER, ref, str(out))
    assert (result.series, result.instances) == (7, 15)
    rows = list(csv.DictReader(io.StringIO((out / "manifest.csv").read_text())))
    assert len(rows) == 7
    first = rows[0]
    assert first["subject"] == "S1-0001" and first["timepoint"] == "BL"
    assert first["dicom_path"] == f"dicom/S1-0001/BL/{first['series_uid']}"
    files = sorted((out / first["dicom_path"]).iterdir())
    assert [f.name for f in files] == ["00001.dcm", "00002.dcm"]
    assert str(pydicom.dcmread(files[0]).SeriesInstanceUID) == first["series_uid"]
    table = pq.read_table(out / "manifest.parquet")
    assert table.num_rows == 7 and table.column("series_uid").to_pylist() == [
        r["series_uid"] for r in rows
    ]
    sheet = json.loads((out / "datasheet.json").read_text())
    assert sheet["counts"]["by_site"] == {"S1": 5, "S2": 2}
    readme = (out / "README.md").read_text()
    assert "profile: `research`" in readme and "clean-descriptors" in readme
    # every file but SHA256SUMS and export.json is listed, with its real digest
    sums: dict[str, str] = {}
    for line in (out / "SHA256SUMS").read_text().splitlines():
        digest, path = line.split("  ", 1)
        sums[path] = digest
    on_disk = {
        str(p.relative_to(out))
        for p in out.rglob("*")
        if p.is_file() and p.name not in ("SHA256SUMS", "export.json")
    }
    assert set(sums) == on_disk
    for path, digest in sums.items():
        assert hashlib.sha256((out / path).read_bytes()).hexdigest() == digest
    info = json.loads((out / "export.json").read_text())
    assert info["exported_by"] == "dm" and info["export_id"] == result.export_id


def test_same_cohort_version_gives_byte_identical_manifests(world: World, tmp_path: Path) -> None:
    ref = save(world, modalities=["MR"])
    a, b = tmp_path / "a", tmp_path / "b"
    run_export(world.archive, DATA_MANAGER, ref, str(a))
    run_export(world.archive, DATA_MANAGER, ref, str(b))
    for name in MANIFESTS:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "export.json").read_bytes() != (b / "export.json").read_bytes()


def test_resume_skips_files_already_written(world: World, tmp_path: Path) -> None:
    ref = save(world)
    out = tmp_path / "pkg"
    first = run_export(world.archive, DATA_MANAGER, ref, str(out))
    victim = next(out.glob("dicom/S2-0001/BL/*/00002.dcm"))
    victim.write_bytes(b"truncated")
    again = run_export(world.archive, DATA_MANAGER, ref, str(out))
    assert again.files_written == 1  # only the damaged file is written again
    assert again.files_skipped == first.files_written - 1
    assert pydicom.dcmread(victim).InstanceNumber == 2


def test_unauthorised_roles_are_refused_like_a_missing_cohort(world: World, tmp_path: Path) -> None:
    ref = save(world)
    for principal in (
        who("reader@T1"),
        who("monitor@T1"),
        who("site_coordinator@T1/S1"),
        who("data_manager@T2"),
        who(),
    ):
        with pytest.raises(ExportRefused) as refused:
            run_export(world.archive, principal, ref, str(tmp_path / "x"))
        with pytest.raises(ExportRefused) as missing:
            run_export(world.archive, principal, "no-such-cohort", str(tmp_path / "x"))
        assert str(refused.value) == str(missing.value).replace("no-such-cohort", ref)
    assert not (tmp_path / "x").exists()
    # a global administrator may export
    run_export(world.archive, who("administrator"), ref, str(tmp_path / "ok"))


def test_export_of_identified_data_is_impossible(world: World) -> None:
    with world.archive.db.read() as session:
        refs = instances(session, series_uid=world.identified_series, collection="quarantine")
    assert refs  # the identified series exists, in quarantine
    for ref in refs:
        row = InstanceRow(ref.sop_uid, ref.blob_key, "q-eu", "quarantine")
        with pytest.raises(IdentifiedDataRefused):
            published_bytes(world.archive, row)
        with pytest.raises(IdentifiedDataRefused):  # a published row in an identified store
            published_bytes(
                world.archive, InstanceRow(ref.sop_uid, ref.blob_key, "q-eu", "published")
            )
        with pytest.raises(IdentifiedDataRefused):  # even if a row claimed another store
            published_bytes(
                world.archive, InstanceRow(ref.sop_uid, ref.blob_key, None, "quarantine")
            )


def test_history_and_audit_record_each_export(world: World, tmp_path: Path) -> None:
    ref = save(world, sites=["S2"])
    result = run_export(world.archive, DATA_MANAGER, ref, str(tmp_path / "p"))
    with pytest.raises(ExportRefused):
        run_export(world.archive, who("reader@T1", name="rita"), ref, str(tmp_path / "q"))
    (entry,) = export_history(world.archive, ["T1"])
    assert entry["export_id"] == result.export_id
    assert (entry["cohort"], entry["actor"], entry["state"]) == ("all@1", "dm", "done")
    assert (entry["series"], entry["instances"]) == (2, 5)
    assert entry["destination"] == str((tmp_path / "p").resolve())
    events = query(world.archive.db, Filter(action="export.run"))
    ok = [e for e in events if e["outcome"] == "success"]
    denied = [e for e in events if e["outcome"] == "denied"]
    assert len(ok) == 1 and ok[0]["actor"] == "dm" and ok[0]["trial"] == "T1"
    detail = json.loads(ok[0]["detail"])
    assert detail["export_id"] == result.export_id and detail["instances"] == 5
    assert ok[0]["object"] == "cohort=all@1"
    assert len(denied) == 1 and denied[0]["actor"] == "rita"
    assert verify(world.archive.db).ok


@pytest.mark.slow
@pytest.mark.parametrize("folder", ["mr-brain-series", "mr-prostate-adc"])
def test_nifti_volume_matches_the_dicom_geometry(world: World, tmp_path: Path, folder: str) -> None:
    files = corpus_files(folder)
    store_published(world.archive, [f.read_bytes() for f in files], "T1", "S2")
    first = pydicom.dcmread(files[0], stop_before_pixels=True)
    ref = save(world, folder, subjects=[str(first.PatientID)])
    out = tmp_path / "pkg"
    result = run_export(world.archive, DATA_MANAGER, ref, str(out), ExportOptions(nifti=True))
    assert result.nifti_problems == []
    (row,) = csv.DictReader(io.StringIO((out / "manifest.csv").read_text()))
    assert row["nifti_status"] == "ok" and row["nifti_path"].endswith(".nii.gz")
    sidecar = json.loads((out / row["nifti_path"].replace(".nii.gz", ".json")).read_text())
    assert sidecar["Modality"] == "MR"
    img: Any = nib.load(out / row["nifti_path"])
    datasets = [pydicom.dcmread(f) for f in sorted((out / row["dicom_path"]).iterdir())]
    d0 = datasets[0]
    # shape and voxel size
    assert img.shape[:3] == (d0.Columns, d0.Rows, len(datasets))
    spacing = sorted(float(v) for v in img.header.get_zooms()[:2])
    assert spacing == pytest.approx(sorted(float(v) for v in d0.PixelSpacing), abs=1e-4)
    # orientation: the volume's in-plane axes are the DICOM row/column directions
    affine = np.asarray(img.affine)
    iop = np.array([float(v) for v in d0.ImageOrientationPatient]) * [-1, -1, 1, -1, -1, 1]
    axes = [affine[:3, i] / np.linalg.norm(affine[:3, i]) for i in (0, 1)]
    assert abs(abs(float(np.dot(axes[0], iop[:3]))) - 1) < 1e-3
    assert abs(abs(float(np.dot(axes[1], iop[3:]))) - 1) < 1e-3
    expected = dicom_geometry(datasets)
    assert expected is not None
    assert geometry_problems(nifti_geometry(out / row["nifti_path"]), expected) == []
    # and voxel values sit where the headers put them: sample pixels through world space
    data = np.asarray(img.dataobj.get_unscaled())
    inverse = np.linalg.inv(affine)
    rng = np.random.default_rng(7)
    for ds in rng.choice(datasets, 5, replace=False):
        pixels = ds.pixel_array
        ipp = np.array([float(v) for v in ds.ImagePositionPatient])
        o = np.array([float(v) for v in ds.ImageOrientationPatient])
        rs, cs = (float(v) for v in ds.PixelSpacing)
        for r, c in rng.integers(0, [ds.Rows, ds.Columns], size=(20, 2)):
            lps = ipp + o[:3] * cs * c + o[3:] * rs * r
            ijk = inverse @ np.append(lps * [-1, -1, 1], 1.0)
            i, j, k = (round(float(v)) for v in ijk[:3])
            assert data[i, j, k] == pixels[r, c]


def test_nifti_geometry_check_catches_a_wrong_volume(tmp_path: Path) -> None:
    files = corpus_files("mr-prostate-adc")
    datasets = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    geometry = dicom_geometry(datasets)
    assert geometry is not None
    wrong = dicom_geometry(datasets[:-1])
    assert wrong is not None
    assert geometry_problems(wrong, geometry)  # one slice short
    nii = nib.Nifti1Image(np.zeros((256, 256, 20), dtype=np.int16), np.diag([0.7, 0.7, 3.0, 1]))
    nib.save(nii, tmp_path / "v.nii.gz")
    assert geometry_problems(nifti_geometry(tmp_path / "v.nii.gz"), geometry)


def test_download_staging_is_pruned_after_a_day(world: World) -> None:
    ref = save(world, sites=["S2"])
    old = run_export(world.archive, DATA_MANAGER, ref, "download")
    folder = staging_dir(world.archive, old.export_id)
    assert (folder / "manifest.csv").is_file()
    day_ago = time.time() - STAGING_KEEP_SECONDS - 60
    os.utime(folder, (day_ago, day_ago))
    fresh = run_export(world.archive, DATA_MANAGER, ref, "download")
    assert not folder.exists()
    assert staging_dir(world.archive, fresh.export_id).is_dir()


@pytest.mark.slow
def test_same_results_on_postgresql(tmp_path: Path) -> None:
    with postgres_database() as url:
        pg = build_world(tmp_path / "pg", database_url=url)
        lite = build_world(tmp_path / "lite")
        try:
            outs: list[Path] = []
            for w in (pg, lite):
                ref = save(w, modalities=["MR"], days_from_baseline_max=90)
                out = tmp_path / f"pkg-{len(outs)}"
                run_export(w.archive, DATA_MANAGER, ref, str(out))
                outs.append(out)
            rows = [
                list(csv.DictReader(io.StringIO((o / "manifest.csv").read_text()))) for o in outs
            ]
            assert len(rows[0]) == 5
            key = ("site_id", "subject", "timepoint", "days_from_baseline", "series_description")
            assert [tuple(r[k] for k in key) for r in rows[0]] == [
                tuple(r[k] for k in key) for r in rows[1]
            ]
        finally:
            pg.archive.close()
            lite.archive.close()
