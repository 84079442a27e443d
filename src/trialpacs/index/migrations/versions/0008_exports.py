"""exports: saved cohort versions and the export history

Revision ID: 0008
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "export_cohorts",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("trial_id", sa.String(64), nullable=False),
        sa.Column("definition", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("name", "version", name="uq_export_cohort_version"),
    )
    op.create_index("ix_export_cohorts_trial_id", "export_cohorts", ["trial_id"])
    op.create_table(
        "export_runs",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column("export_id", sa.String(32), nullable=False, unique=True),
        sa.Column("cohort_name", sa.String(64), nullable=False),
        sa.Column("cohort_version", sa.Integer(), nullable=False),
        sa.Column("trial_id", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("destination_kind", sa.String(16), nullable=False),
        sa.Column("destination", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("series_count", sa.Integer(), nullable=False),
        sa.Column("instance_count", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("manifest_sha256", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_export_runs_trial_id", "export_runs", ["trial_id"])


def downgrade() -> None:
    op.drop_index("ix_export_runs_trial_id", table_name="export_runs")
    op.drop_table("export_runs")
    op.drop_index("ix_export_cohorts_trial_id", table_name="export_cohorts")
    op.drop_table("export_cohorts")
