"""The trial's `qc:` block: validated with lines, planned, applied once, exported, used by QC."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from trialpacs.config import ConfigError, apply, export_yaml, load_text, plan
from trialpacs.qc.fusion import for_trial
from trialpacs.qc.store import trial_qc
from trialpacs.settings import load_settings
from trialpacs.trials import catalog
from trials.support import config_yaml, open_archive

ANCHOR = "    sites:\n      - {site: S01"
QC_BLOCK = """\
    qc:
      hold: 0.6
      method: iforest
      min_reference: 20
      accept_localizers: true
"""


def _with_qc(tmp: Path, block: str = QC_BLOCK) -> str:
    text = config_yaml(tmp)
    assert text.count(ANCHOR) == 1
    return text.replace(ANCHOR, block + ANCHOR)


def test_qc_block_is_planned_applied_once_exported_and_used(tmp_path: Path) -> None:
    archive = open_archive(tmp_path)
    apply(archive, load_text(config_yaml(tmp_path)))
    doc = load_text(_with_qc(tmp_path))
    (change,) = plan(archive, doc)
    assert (change.action, change.kind, change.name) == ("update", "trial", "ONCO1")
    old, new = change.fields["qc"]
    assert old is None and new["hold"] == 0.6 and new["method"] == "iforest"
    assert "qc:" in str(change)
    assert len(apply(archive, doc)) == 1
    assert plan(archive, doc) == [] and apply(archive, doc) == []

    stored = trial_qc(archive.db, "ONCO1")
    assert stored == {"hold": 0.6, "method": "iforest", "min_reference": 20,
                      "accept_localizers": True}  # fmt: skip
    exported = export_yaml(archive)
    assert "qc:" in exported and "hold: 0.6" in exported and "z_hold" not in exported
    assert plan(archive, load_text(exported, "export.yaml")) == []

    # What the anatomy hook uses: the trial's keys over the installation default.
    t = for_trial({"hold": 0.4, "z_hold": 4.0}, stored)
    assert (t.hold, t.z_hold, t.method, t.min_reference) == (0.6, 4.0, "isolation_forest", 20)
    assert t.accept_localizers and not t.hold_unverifiable
    assert for_trial({}, trial_qc(archive.db, "NO-SUCH")).hold == 0.5

    # Removing the block is a change back to the installation default; `qc: {}` is no block.
    plain = load_text(config_yaml(tmp_path))
    (back,) = apply(archive, plain)
    assert back.fields["qc"][1] is None and trial_qc(archive.db, "ONCO1") == {}
    assert plan(archive, load_text(_with_qc(tmp_path, "    qc: {}\n"))) == []


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_text(text, "trials.yaml")
    return [str(p) for p in info.value.problems]


def test_bad_qc_values_name_file_line_and_hint(tmp_path: Path) -> None:
    typo = _with_qc(tmp_path, "    qc:\n      hodl: 0.6\n")
    line = typo.splitlines().index("      hodl: 0.6") + 1
    (problem,) = _problems(typo)
    assert problem.startswith(f"trials.yaml:{line}: trials.0.qc.hodl: unknown key")
    assert "did you mean 'hold'" in problem

    method = _with_qc(tmp_path, "    qc:\n      method: svm\n")
    line = method.splitlines().index("      method: svm") + 1
    (problem,) = _problems(method)
    assert problem.startswith(f"trials.yaml:{line}: trials.0.qc.method:")
    assert "'lof' or 'iforest'" in problem and "hint: use one of the listed values" in problem

    (problem,) = _problems(_with_qc(tmp_path, "    qc:\n      hold: 1.5\n"))
    assert "trials.0.qc.hold: Input should be less than or equal to 1" in problem
    (problem,) = _problems(_with_qc(tmp_path, "    qc: [hold]\n"))
    assert "trials.0.qc" in problem and "write a mapping" in problem


def test_installation_default_is_one_mapping_not_a_table_per_trial(tmp_path: Path) -> None:
    assert load_settings(None, data_dir=tmp_path, qc_thresholds={"hold": 0.6}).qc_thresholds
    with pytest.raises(ValidationError, match="trial's `qc:` block"):
        load_settings(None, data_dir=tmp_path, qc_thresholds={"SHO1": {"hold": 0.6}})
    with pytest.raises(ValidationError, match="hodl"):
        load_settings(None, data_dir=tmp_path, qc_thresholds={"hodl": 0.6})


def test_timepoint_expected_series_round_trip_and_bad_family(tmp_path: Path) -> None:
    archive = open_archive(tmp_path)
    bl = "      - {id: BL, description: Baseline, modalities: [MR], anatomy: [KNEE]}"
    text = config_yaml(tmp_path)
    assert bl in text
    declared = text.replace(bl, bl[:-1] + ", expected_series: [t1, localizer]}")
    apply(archive, load_text(declared))
    exported = export_yaml(archive)
    assert "expected_series:" in exported
    assert plan(archive, load_text(exported, "export.yaml")) == []
    trial = catalog.get_trial(archive.db, "ONCO1")
    assert trial is not None and trial.timepoints[0].expected_series == ("t1", "localizer")
    bad = text.replace(bl, bl[:-1] + ", expected_series: [t3]}")
    line = bad.splitlines().index(bl[:-1] + ", expected_series: [t3]}") + 1
    (problem,) = _problems(bad)
    assert problem.startswith(f"trials.yaml:{line}: trials.0.timepoints.0.expected_series.0:")
    assert "'t1'" in problem and "hint: use one of the listed values" in problem


def test_qc_block_and_expected_series_on_postgresql(tmp_path: Path) -> None:
    """Migration 0012 on the production database: the block and the series survive apply."""
    from support.services import postgres_database

    bl = "      - {id: BL, description: Baseline, modalities: [MR], anatomy: [KNEE]}"
    text = _with_qc(tmp_path).replace(bl, bl[:-1] + ", expected_series: [t1]}")
    with postgres_database() as url:
        archive = open_archive(tmp_path, database_url=url)
        try:
            doc = load_text(text)
            assert apply(archive, doc) and plan(archive, doc) == []
            assert trial_qc(archive.db, "ONCO1")["method"] == "iforest"
            trial = catalog.get_trial(archive.db, "ONCO1")
            assert trial is not None and trial.timepoints[0].expected_series == ("t1",)
        finally:
            archive.close()
