"""The frame-count limit (setting ``max_frames``) in the parser, the store path,
the importer and the pixel cleaner; the live STOW-RS / C-STORE refusals are in
test_limits.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from pydicom.dataset import Dataset

from dicomfactory import make_bytes, make_dataset, to_bytes
from pixels._support import FixedEngine, image_dataset
from trialpacs.archive import Archive
from trialpacs.deid.pixel_hook import PixelCleanError, pixel_cleaner_for
from trialpacs.deid.pixels import (
    FramePlan,
    LayoutRules,
    OcrPixelCleaner,
    PreprocessOptions,
    ScanRules,
)
from trialpacs.deid.profile import load_profile
from trialpacs.dicom.parse import VIDEO_TRANSFER_SYNTAXES, check_frames, parse_part10
from trialpacs.errors import InvalidInput, TooLarge
from trialpacs.index.writer import find_instance
from trialpacs.ingest.importer import collect, import_items
from trialpacs.ingest.store import StoreStatus, store_bytes
from trialpacs.records.video import DICOM_STREAM_FORMATS
from trialpacs.settings import DEFAULT_MAX_FRAMES, Settings, load_settings


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    opened = Archive.open(load_settings(None, data_dir=tmp_path / "data", max_frames=3))
    yield opened
    opened.close()


def stored(archive: Archive, sop_uid: str) -> bool:
    with archive.db.read() as session:
        return find_instance(session, sop_uid) is not None


# --- the check -------------------------------------------------------------------


def test_default_is_5000_and_the_setting_must_be_positive() -> None:
    assert Settings().max_frames == DEFAULT_MAX_FRAMES == 5000
    with pytest.raises(ValidationError, match="max_frames"):
        Settings(max_frames=0)


def test_check_frames_refuses_above_the_limit_naming_count_and_setting() -> None:
    explicit = "1.2.840.10008.1.2.1"
    check_frames(make_dataset(frames=3), explicit, 3)  # at the limit
    check_frames(make_dataset(), explicit, 1)  # no NumberOfFrames: one frame
    with pytest.raises(TooLarge) as refused:
        check_frames(make_dataset(frames=4), explicit, 3)
    assert str(refused.value) == "instance has 4 frames; the limit is 3 (max_frames)"
    # The C-STORE Error Comment is an LO of 64 characters: the message fits whole.
    big = make_dataset(frames=2)
    big.NumberOfFrames = 100_000
    with pytest.raises(TooLarge) as refused:
        check_frames(big, explicit, 50_000)
    assert len(str(refused.value)) <= 64


def test_unreadable_frame_count_is_refused() -> None:
    ds = make_dataset(frames=2)
    ds.NumberOfFrames = ["2", "3"]  # VM 1 element with two values
    with pytest.raises(InvalidInput, match=r"NumberOfFrames \(0028,0008\)"):
        check_frames(ds, "1.2.840.10008.1.2.1", 5000)


def test_video_transfer_syntaxes_are_exempt() -> None:
    # The same set the video path decodes (records.video), kept in the parser
    # without importing PyAV.
    assert set(DICOM_STREAM_FORMATS) == VIDEO_TRANSFER_SYNTAXES
    clip = make_dataset(frames=2)
    clip.NumberOfFrames = 9000  # five minutes at 30 fps
    check_frames(clip, "1.2.840.10008.1.2.4.102", 3)
    with pytest.raises(TooLarge):
        check_frames(clip, "1.2.840.10008.1.2.4.50", 3)  # JPEG baseline: frames are frames


def test_parser_applies_the_limit_only_when_given() -> None:
    data = make_bytes(rows=2, cols=2, frames=4)
    with pytest.raises(TooLarge, match="4 frames; the limit is 3"):
        parse_part10(data, max_frames=3)
    assert parse_part10(data).sop_instance_uid  # reading what is stored: no limit


# --- ingest routes on a real archive -------------------------------------------


def test_store_path_refuses_above_and_stores_at_the_limit(archive: Archive) -> None:
    over = make_dataset(frames=4)
    with pytest.raises(TooLarge, match="4 frames; the limit is 3 \\(max_frames\\)"):
        store_bytes(archive, to_bytes(over))
    assert not stored(archive, over.SOPInstanceUID)
    at = make_dataset(frames=3)
    assert store_bytes(archive, to_bytes(at)).status is StoreStatus.STORED
    assert stored(archive, at.SOPInstanceUID)


def test_folder_import_refuses_the_file_by_name_and_stores_the_rest(
    archive: Archive, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    study = "1.2.826.0.1.3680043.8.498.77"
    over, fine = make_dataset(frames=4, study=study), make_dataset(frames=2, study=study)
    (folder / "cine.dcm").write_bytes(to_bytes(over))
    (folder / "ok.dcm").write_bytes(to_bytes(fine))
    report = import_items(archive, collect([folder], archive))
    assert report.stored == 1
    assert len(report.failed) == 1
    label, reason = report.failed[0]
    assert label.endswith("cine.dcm")
    assert reason == "instance has 4 frames; the limit is 3 (max_frames)"
    assert stored(archive, fine.SOPInstanceUID)
    assert not stored(archive, over.SOPInstanceUID)


# --- the pixel cleaner fails closed ---------------------------------------------


def _cine(n_frames: int) -> tuple[Dataset, bytes]:
    arr = np.zeros((n_frames, 16, 16), dtype=np.uint8)
    arr[:, 2:6, 2:12] = 255
    ds = image_dataset(arr, photometric="MONOCHROME2", modality="US", frames=True)
    return ds, bytes(ds.PixelData)


def _cleaner(engine: FixedEngine, max_frames: int) -> OcrPixelCleaner:
    return OcrPixelCleaner(
        engine=engine,
        scan_rules=ScanRules(),
        layout_rules=LayoutRules(),
        preprocess=PreprocessOptions(),
        frame_plan=FramePlan(mode="all"),
        max_frames=max_frames,
    )


def test_cleaner_refuses_more_frames_than_the_limit_without_ocr() -> None:
    ds, before = _cine(4)
    engine = FixedEngine([(2, 2, 12, 6)])
    with pytest.raises(PixelCleanError, match=r"4 frames \(NumberOfFrames\) exceed the limit of 3"):
        _cleaner(engine, 3).clean(ds, ["DOE^JANE"])
    assert engine.calls == 0
    assert bytes(ds.PixelData) == before  # nothing masked, nothing released


def test_cleaner_reads_every_frame_at_the_limit() -> None:
    ds, before = _cine(3)
    engine = FixedEngine([(2, 2, 12, 6)])
    report = _cleaner(engine, 3).clean(ds, ["DOE^JANE"])
    assert report.scanned
    assert engine.calls == 4  # three frames and the static composite
    assert bytes(ds.PixelData) != before  # the text box was masked


def test_pipeline_cleaner_takes_the_deployment_limit() -> None:
    profile = load_profile("trial")
    raised = pixel_cleaner_for(profile, max_frames=60_000)
    assert isinstance(raised, OcrPixelCleaner) and raised.max_frames == 60_000
    default = pixel_cleaner_for(profile)
    assert isinstance(default, OcrPixelCleaner) and default.max_frames == DEFAULT_MAX_FRAMES
