"""A live archive per storage backend: SQLite + files, PostgreSQL, and S3 (moto)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.services import LiveServer, live_server, moto_s3, postgres_database

BACKENDS = ["sqlite-files", "postgres", "s3"]


@contextlib.contextmanager
def backend_env(name: str) -> Iterator[dict[str, str]]:
    if name == "sqlite-files":
        yield {}
    elif name == "postgres":
        with postgres_database() as url:
            yield {"TRIALPACS_DATABASE_URL": url}
    elif name == "s3":
        with moto_s3() as env:
            yield env
    else:  # pragma: no cover
        raise ValueError(name)


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    data_dir: Path = tmp_path_factory.mktemp(f"archive-{request.param}")
    with backend_env(request.param) as env, live_server(data_dir, env) as srv:
        yield srv
