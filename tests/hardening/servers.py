"""``trialpacs serve`` as a subprocess the hardening tests can kill, restart and talk TLS to."""

from __future__ import annotations

import contextlib
import os
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from support.services import create_token, free_port, trialpacs_cmd


@dataclass
class Served:
    """One server process; ports and data stay the same across restarts."""

    data_dir: Path
    env: dict[str, str]
    http_port: int
    dicom_port: int
    scheme: str = "http"
    verify: str | bool = True
    cert: tuple[str, str] | None = None
    token: str = ""
    proc: subprocess.Popen[bytes] | None = None
    starts: int = field(default=0)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.http_port}"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def client(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers=self.headers(),
            verify=tls_verify(self.verify, self.cert),
            timeout=timeout,
        )

    def start(self, timeout: float = 60.0) -> None:
        if not self.token:
            self.token = create_token(self.env)
        self.starts += 1
        log = (self.data_dir / f"server.{self.starts}.log").open("wb")
        self.proc = subprocess.Popen(
            [
                *trialpacs_cmd(),
                "serve",
                "--http-port",
                str(self.http_port),
                "--log-level",
                "warning",
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.proc.returncode}: {self.log_text()[-2000:]}"
                )
            try:
                with self.client(timeout=2.0) as c:
                    if c.get("/health").status_code == 200:
                        return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not answer /health within {timeout}s")

    def log_text(self) -> str:
        return (self.data_dir / f"server.{self.starts}.log").read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, no flush, like a power cut for the process."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def tls_verify(ca: str | bool, cert: tuple[str, str] | None = None) -> ssl.SSLContext | bool:
    """httpx's ``verify`` for a CA file and an optional client certificate."""
    if not isinstance(ca, str):
        return ca
    ctx = ssl.create_default_context(cafile=ca)
    if cert is not None:
        ctx.load_cert_chain(*cert)
    return ctx


@contextlib.contextmanager
def served(
    data_dir: Path, extra_env: dict[str, str] | None = None, *, dicom: bool = True, **kw: object
) -> Iterator[Served]:
    http_port = free_port()
    dicom_port = free_port() if dicom else 0
    env = {
        **os.environ,
        "TRIALPACS_DATA_DIR": str(data_dir),
        "TRIALPACS_DICOM_PORT": str(dicom_port),
        "TRIALPACS_DICOM_ACCEPT_UNKNOWN": "true",
        "TRIALPACS_PIPELINE_EXECUTOR": "off",
        **(extra_env or {}),
    }
    server = Served(data_dir=data_dir, env=env, http_port=http_port, dicom_port=dicom_port, **kw)  # type: ignore[arg-type]
    try:
        server.start()
        yield server
    finally:
        server.stop()
