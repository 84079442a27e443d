"""index at scale: trigram indexes for name wildcards and modalities (PostgreSQL)

At a million instances the study list itself is cheap (one table, ordered by
primary key, ``LIMIT``), but three QIDO shapes cannot use a b-tree and fall
back to scanning every study row when few rows match:

* ``PatientName=*ANDER*`` / ``SMI*`` matches ``upper(patient_name) LIKE ...``;
* fuzzy matching matches ``patient_name_search LIKE '% WORD%'``;
* ``ModalitiesInStudy=PT`` matches ``modalities LIKE '%\\PT\\%'``.

GIN trigram indexes (``pg_trgm``, shipped with PostgreSQL and trusted, so the
database owner may create it) answer all three, for prefixes and infixes
alike. Measured in bench/index_scale_bench.py (docs/operations.md). SQLite
(the embedded default, thousands of studies) is left as it is. Where
``pg_trgm`` is not installed the migration leaves the indexes out rather
than fail: queries stay correct, only slower.

Revision ID: 0011
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0005"
branch_labels = None
depends_on = None

TRGM_INDEXES = {
    "ix_studies_patient_name_trgm": "upper(patient_name) gin_trgm_ops",
    "ix_studies_patient_name_search_trgm": "patient_name_search gin_trgm_ops",
    "ix_studies_modalities_trgm": "modalities gin_trgm_ops",
}


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    available = bind.execute(
        sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
    ).scalar()
    if not available:
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, expr in TRGM_INDEXES.items():
        op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON studies USING gin ({expr})")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in TRGM_INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
