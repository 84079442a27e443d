"""Time point day windows: round trip through apply/export, and errors for bad windows."""

from __future__ import annotations

from pathlib import Path

import pytest

from trialpacs.config import ConfigError, apply, export_yaml, load_text, plan
from trialpacs.trials import catalog
from trials.support import config_yaml, open_archive

BL = "{id: BL, description: Baseline,"
W12 = "{id: W12, description: Week 12,"


def _with(tmp: Path, bl: str, w12: str) -> str:
    text = config_yaml(tmp)
    return text.replace(BL, f"{BL} window_days: {bl},").replace(W12, f"{W12} window_days: {w12},")


def test_windows_apply_export_and_plan_again(tmp_path: Path) -> None:
    archive = open_archive(tmp_path)
    apply(archive, load_text(_with(tmp_path, "[-14, 0]", "[70, 98]")))
    trial = catalog.get_trial(archive.db, "ONCO1")
    assert trial is not None
    assert [t.window_days for t in trial.timepoints] == [(-14, 0), (70, 98)]
    exported = export_yaml(archive)
    assert "window_days" in exported
    assert plan(archive, load_text(exported)) == []
    (change,) = plan(archive, load_text(_with(tmp_path, "[-14, 0]", "[60, 98]")))
    assert (change.action, change.kind, change.name) == ("update", "trial", "ONCO1")


@pytest.mark.parametrize(
    ("bl", "w12", "message"),
    [
        ("[0, -14]", "[70, 98]", "time point 'BL' window [0, -14] is empty"),
        ("[-14, 80]", "[70, 98]", "time point 'W12' window [70, 98] overlaps 'BL' [-14, 80]"),
    ],
)
def test_bad_windows_name_the_line(tmp_path: Path, bl: str, w12: str, message: str) -> None:
    text = _with(tmp_path, bl, w12)
    with pytest.raises(ConfigError) as info:
        load_text(text, "trials.yaml")
    (problem,) = [str(p) for p in info.value.problems]
    bad = BL if "'BL' window" in message.split("overlaps")[0] else W12
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if bad in ln)
    assert problem.startswith(f"trials.yaml:{line}: trial 'ONCO1': {message}"), problem
