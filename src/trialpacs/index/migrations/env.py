"""Alembic environment: uses the connection handed over by trialpacs.index.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from trialpacs.access import models as _access_models  # noqa: F401  (registers the tables)
from trialpacs.audit import models as _audit_models  # noqa: F401  (registers the tables)
from trialpacs.index.models import Base
from trialpacs.trials import models as _trial_models  # noqa: F401  (registers the tables)

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
        with engine.begin() as conn:
            _configure(conn)
        return
    _configure(connection)


def _configure(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
