"""The onnxruntime sessions behind rapidocr get the options that keep them fast on shared cores."""

from __future__ import annotations

import onnxruntime as ort

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
