"""A live ``trialpacs serve`` with its DICOM listener, and the peers that talk to it.

Peers are real: Debian's dcmtk tools and pynetdicom AEs, all on loopback
ports chosen at run time. The known-AE table is filled through the CLI, as
an administrator would.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from support.services import LiveServer, free_port, live_server, trialpacs_cmd
from trialpacs.archive import Archive
from trialpacs.dimse import peers, remote_aes
from trialpacs.settings import Settings

PEERS = ("STORESCU", "FINDSCU", "GETSCU", "ECHOSCU", "PYSCU")


@dataclass
class DimseServer:
    live: LiveServer
    port: int
    move_port: int
    commit_port: int
    ae_title: str = "TRIALPACS"

    @property
    def env(self) -> dict[str, str]:
        return self.live.env

    def address(self, title: str | None = None) -> str:
        return f"{title or self.ae_title}@127.0.0.1:{self.port}"


def _db_env(env: dict[str, str]) -> dict[str, str]:
    url = env.get("TRIALPACS_DATABASE_URL")
    return {"database_url": url} if url else {}


def dcmtk_env() -> dict[str, str]:
    # Debian's DCMTK 3.6.7 leaves Nagle on unless told (see BENCHMARKS.md).
    return {**os.environ, "TCP_NODELAY": "1"}


def require_dcmtk() -> None:
    for tool in ("echoscu", "storescu", "findscu", "movescu", "getscu"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} not found: apt-get install dcmtk (see scripts/apt-packages.txt)")


def cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*trialpacs_cmd(), *args], env=env, capture_output=True, text=True, check=check
    )


@contextlib.contextmanager
def dimse_archive(
    tmp_path_factory: pytest.TempPathFactory, env: dict[str, str] | None = None
) -> Iterator[DimseServer]:
    require_dcmtk()
    data_dir = tmp_path_factory.mktemp("dimse-archive")
    with live_server(data_dir, env, dicom=True) as live:
        assert live.dicom_port is not None
        move_port = free_port()
        commit_port = free_port()
        archive = Archive.open(Settings(data_dir=data_dir, **_db_env(live.env)), migrate=False)
        try:
            for title in PEERS:
                remote_aes.add(archive.db, title, "127.0.0.1", free_port())
                # The archive's own route stores published data outside any
                # trial: only a global grant reads it back (tests/dimse/test_access.py
                # covers the per-trial grants).
                peers.grant(archive.db, title, "reader")
            remote_aes.add(archive.db, "MOVESCU", "127.0.0.1", move_port)
            peers.grant(archive.db, "MOVESCU", "reader")
            remote_aes.add(archive.db, "COMMITSCU", "127.0.0.1", commit_port)
        finally:
            archive.close()
        yield DimseServer(live, live.dicom_port, move_port, commit_port)


@pytest.fixture(scope="module")
def dimse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DimseServer]:
    with dimse_archive(tmp_path_factory) as server:
        yield server
