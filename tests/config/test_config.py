"""Configuration as code: plan/apply round trip, idempotence, and errors with lines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from trialpacs.config import ConfigError, apply, current, export_yaml, load_text, plan
from trialpacs.index.models import RemoteAE
from trialpacs.trials import catalog
from trials.support import config_yaml, open_archive


def test_apply_is_idempotent_and_export_round_trips(tmp_path: Path) -> None:
    archive = open_archive(tmp_path)
    doc = load_text(config_yaml(tmp_path))
    first = plan(archive, doc)
    assert {(c.action, c.kind, c.name) for c in first} >= {
        ("create", "trial", "ONCO1"),
        ("create", "site", "S01"),
        ("create", "storage backend", "q-eu"),
        ("create", "region", "eu-west"),
        ("create", "profile", "onco"),
        ("create", "role", "s01-pacs"),
    }
    assert apply(archive, doc) == first
    assert plan(archive, doc) == []
    assert apply(archive, doc) == []
    trial = catalog.get_trial(archive.db, "ONCO1")
    assert trial is not None
    assert trial.sites == {"S01": "ONCO1_S01", "S02": None}
    assert [t.timepoint_id for t in trial.timepoints] == ["BL", "W12"]
    with archive.db.read() as session:
        aes = {a.ae_title: a.site for a in session.query(RemoteAE)}
    assert aes == {"PACS_S01": "S01", "PACS_S02": "S02"}

    exported = export_yaml(archive)
    again = load_text(exported, "export.yaml")
    assert plan(archive, again) == []
    assert again.normalized() == current(archive)

    # A change shows up as an update with the field, then applies once.
    changed = load_text(config_yaml(tmp_path).replace("Oncology one", "Oncology 1"))
    (change,) = plan(archive, changed)
    assert (change.action, change.kind, change.name) == ("update", "trial", "ONCO1")
    assert change.fields["name"] == ("Oncology one", "Oncology 1")
    assert len(apply(archive, changed)) == 1
    assert plan(archive, changed) == []


def test_removing_a_site_deletes_it_and_its_aes(tmp_path: Path) -> None:
    archive = open_archive(tmp_path)
    apply(archive, load_text(config_yaml(tmp_path)))
    text = config_yaml(tmp_path)
    text = text.replace("      - {site: S02}\n", "")
    start = text.index("  - id: S02")
    end = text.index("trials:")
    text = text[:start] + text[end:]
    changes = apply(archive, load_text(text))
    assert ("delete", "site", "S02") in {(c.action, c.kind, c.name) for c in changes}
    with archive.db.read() as session:
        assert {a.ae_title for a in session.query(RemoteAE)} == {"PACS_S01"}


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_text(text, "trials.yaml")
    return [str(p) for p in info.value.problems]


def test_unknown_key_names_line_and_suggests(tmp_path: Path) -> None:
    text = config_yaml(tmp_path).replace("    sponsor: ACME Pharma", "    sponser: ACME Pharma")
    line = text.splitlines().index("    sponser: ACME Pharma") + 1
    (problem,) = _problems(text)
    assert problem.startswith(f"trials.yaml:{line}: trials.0.sponser: unknown key")
    assert "did you mean 'sponsor'" in problem


def test_unknown_reference_names_line_and_known_values(tmp_path: Path) -> None:
    text = config_yaml(tmp_path).replace("      - {site: S02}", "      - {site: S03}")
    line = text.splitlines().index("      - {site: S03}") + 1
    (problem,) = _problems(text)
    assert problem.startswith(f"trials.yaml:{line}: trial 'ONCO1': unknown site 'S03'")
    assert "known sites: S01, S02" in problem


def test_residency_violation_in_config_is_an_error(tmp_path: Path) -> None:
    text = config_yaml(tmp_path).replace(
        "    identified_backend: q-us", "    identified_backend: q-eu"
    )
    lines = text.splitlines()
    line = lines.index("    identified_backend: q-eu", lines.index("  - id: S02")) + 1
    (problem,) = _problems(text)
    assert problem.startswith(f"trials.yaml:{line}: site 'S02' is in region 'us-east'")
    assert "identified data may not leave its site's region" in problem


def test_yaml_syntax_and_type_errors(tmp_path: Path) -> None:
    (syntax,) = _problems("trials:\n  - id: T1\n    name: [unclosed\n")
    assert syntax.startswith("trials.yaml:") and "not valid YAML" in syntax
    problems = _problems("sites:\n  - id: S1\n    region: local\n    hosts: 12\n")
    assert problems[0].startswith("trials.yaml:4: sites.0.hosts")
    assert "YAML list" in problems[0]
    missing = _problems("sites:\n  - id: S1\n")
    assert missing[0].startswith("trials.yaml:2: sites.0.region: required key is missing")
    dup = _problems("regions:\n  - id: a\n  - id: a\n")
    assert dup == ["trials.yaml:3: regions: 'a' is declared twice\n    hint: names must be unique"]
    bad_profile = _problems("profiles:\n  - name: p\n    options: [no-such-option]\n")
    assert bad_profile[0].startswith("trials.yaml:2: profile 'p': ")
    assert "unknown option" in bad_profile[0]
    with pytest.raises(ConfigError) as info:
        load_text("trials:\n  - id: T1\n    ae_title: TRIALPACS\n", "t.yaml", server_ae="TRIALPACS")
    assert str(info.value.problems[0]).startswith("t.yaml:3: AE title 'TRIALPACS' is the archive's")


def test_cli_plan_apply_export(tmp_path: Path) -> None:
    cfg = tmp_path / "trials.yaml"
    cfg.write_text(config_yaml(tmp_path))
    env_args = ["--data-dir", str(tmp_path / "data")]
    cmd = [sys.executable, "-m", "trialpacs.cli.main"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cmd, *args, *env_args], capture_output=True, text=True)

    planned = run("plan", str(cfg))
    assert planned.returncode == 3, planned.stderr
    assert "+ trial ONCO1" in planned.stdout
    assert run("apply", str(cfg)).returncode == 0
    again = run("plan", str(cfg))
    assert again.returncode == 0 and "no changes" in again.stdout
    assert "no changes" in run("apply", str(cfg)).stdout
    exported = tmp_path / "export.yaml"
    assert run("export-config", "-o", str(exported)).returncode == 0
    assert run("plan", str(exported)).returncode == 0
    bad = tmp_path / "bad.yaml"
    text = config_yaml(tmp_path)
    bad.write_text(text.replace("region: us-east\n    purpose", "region: us-eats\n    purpose"))
    failed = run("apply", str(bad))
    assert failed.returncode == 2
    assert f"{bad}:" in failed.stderr and "unknown region 'us-eats'" in failed.stderr
    assert "did you mean 'us-east'" in failed.stderr
