"""The migration history stays one line that every database can follow."""

from __future__ import annotations

from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from trialpacs.index.migrate import alembic_config, current, upgrade


def test_history_has_a_single_head() -> None:
    """Parallel feature migrations must be merged before the next one lands.

    Two heads would let a new migration pick either parent, and an operator's
    ``db current`` would print several revisions for one schema.
    """
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1


def test_fresh_database_reaches_the_single_head(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'index.db'}")
    upgrade(engine)
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert current(engine) == head
    upgrade(engine)  # idempotent on every start
    assert current(engine) == head
