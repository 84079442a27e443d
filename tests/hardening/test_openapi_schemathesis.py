"""schemathesis against the app's OpenAPI description: no request it can make,
as an administrator or as a reader, gets a 5xx.

Runs against the ASGI app in-process (no network). Time-boxed with
``TRIALPACS_SCHEMATHESIS_EXAMPLES`` examples per operation and role (default 3).
The schema needs the app at collection time (schemathesis' lazy fixture does
not work with this pytest), so the archive is opened when the module is
collected, in a temporary directory removed after the module.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from trialpacs.access.apikeys import create_key
from trialpacs.archive import Archive
from trialpacs.settings import Settings
from trialpacs.web.app import create_app

EXAMPLES = int(os.environ.get("TRIALPACS_SCHEMATHESIS_EXAMPLES", "3"))
DATA = Path(tempfile.mkdtemp(prefix="trialpacs-schemathesis-"))
ARCHIVE = Archive.open(Settings(data_dir=DATA, cookie_secure=False, pipeline_executor="off"))
TOKENS = {
    "admin": create_key(ARCHIVE.db, "schemathesis-admin"),
    "reader": create_key(ARCHIVE.db, "schemathesis-reader", grants=["reader"]),
}
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(ARCHIVE))


@pytest.fixture(scope="module", autouse=True)
def _cleanup() -> Iterator[None]:
    yield
    ARCHIVE.close()
    shutil.rmtree(DATA, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.parametrize("role", ["admin", "reader"])
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors(case: schemathesis.Case, role: str) -> None:
    response = case.call(headers={"Authorization": f"Bearer {TOKENS[role]}"})
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} as {role} -> {response.status_code}: "
        f"{response.text[:500]}\nreproduce: {case.as_curl_command()}"
    )
