"""The onnxruntime sessions behind rapidocr get the options that keep them fast on shared cores."""

from __future__ import annotations

import onnxruntime as ort
import pytest

from trialpacs.deid.pixels.ocr import RapidOcrEngine


def test_sessions_sequential_without_spinning_on_requested_threads() -> None:
    engine = RapidOcrEngine(threads=1)
    det, rec = engine._load()
    for session in (det.session.session, rec.session.session):
        opts = session.get_session_options()
        assert opts.intra_op_num_threads == 1
        assert opts.inter_op_num_threads == 1
        assert opts.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
        assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_default_threads_follow_the_cpus_this_process_may_use() -> None:
    import os

    det, _ = RapidOcrEngine()._load()
    opts = det.session.session.get_session_options()
    assert opts.intra_op_num_threads == len(os.sched_getaffinity(0))


def test_tesseract_runs_single_threaded_unless_the_caller_chose(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from trialpacs.deid.pixels.ocr import _tesseract_env

    monkeypatch.delenv("OMP_THREAD_LIMIT", raising=False)
    assert _tesseract_env()["OMP_THREAD_LIMIT"] == "1"
    monkeypatch.setenv("OMP_THREAD_LIMIT", "2")
    assert _tesseract_env()["OMP_THREAD_LIMIT"] == "2"
