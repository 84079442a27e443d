"""Start the real services tests need: a trialpacs server, PostgreSQL databases, moto S3.

Everything listens on loopback ports chosen at run time and is torn down by
the fixture that started it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

PG_ADMIN_URL = os.environ.get("TRIALPACS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError as exc:
            last = exc
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s: {last}")


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A throwaway PostgreSQL database on the machine's server; yields its SQLAlchemy URL."""
    import psycopg

    name = f"trialpacs_test_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def moto_s3() -> Iterator[dict[str, str]]:
    """moto's S3 in server mode on a free port; yields the env a client needs."""
    port = free_port()
    exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
    proc = subprocess.Popen(
        [exe, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/", proc=proc)
        yield {
            "TRIALPACS_STORAGE": "s3",
            "TRIALPACS_S3_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "TRIALPACS_S3_BUCKET": "trialpacs-test",
            "TRIALPACS_S3_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    finally:
        proc.terminate()
        proc.wait(10)


@dataclass
class LiveServer:
    url: str
    token: str
    data_dir: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    dicom_port: int | None = None
    log: Path = field(default_factory=Path)

    @property
    def dicomweb(self) -> str:
        return self.url + "/dicomweb"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def trialpacs_cmd() -> list[str]:
    return [sys.executable, "-m", "trialpacs.cli.main"]


def create_token(env: dict[str, str], name: str = "tests") -> str:
    out = subprocess.run(
        [*trialpacs_cmd(), "token", "create", "--name", name],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


@contextlib.contextmanager
def live_server(
    data_dir: Path,
    extra_env: dict[str, str] | None = None,
    *,
    dicom: bool = False,
    args: list[str] | None = None,
) -> Iterator[LiveServer]:
    """``trialpacs serve`` as a subprocess on free loopback ports."""
    port = free_port()
    dicom_port = free_port() if dicom else 0
    env = {
        **os.environ,
        "TRIALPACS_DATA_DIR": str(data_dir),
        "TRIALPACS_DICOM_PORT": str(dicom_port),
        # dicomweb-client sends "Host" without the port, so URIs built from the
        # request would lose it; deployments set the public URL the same way.
        "TRIALPACS_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        **(extra_env or {}),
    }
    token = create_token(env)
    log = data_dir / "server.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [
                *trialpacs_cmd(),
                "serve",
                "--http-port",
                str(port),
                "--log-level",
                "warning",
                *(args or []),
            ],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    server = LiveServer(
        url=f"http://127.0.0.1:{port}",
        token=token,
        data_dir=data_dir,
        env=env,
        proc=proc,
        dicom_port=dicom_port or None,
        log=log,
    )
    try:
        # Generous: on a shared 2-core machine under load, start-up (imports, migrations)
        # has taken more than 30 s.
        wait_http(server.url + "/health", timeout=90, proc=proc)
        yield server
    finally:
        server.stop()
