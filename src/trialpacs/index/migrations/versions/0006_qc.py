"""qc: anatomy QC results, features for the batch comparison, decisions

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "qc_series",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("series_uid", sa.String(length=64), nullable=False),
        sa.Column("deid_series_uid", sa.String(length=64), nullable=False),
        sa.Column("deid_study_uid", sa.String(length=64), nullable=False),
        sa.Column("trial_id", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("timepoint", sa.String(length=64), nullable=False),
        sa.Column("modality", sa.String(length=16), nullable=False),
        sa.Column("stratum", sa.String(length=64), nullable=False),
        sa.Column("features", sa.LargeBinary(), nullable=True),
        sa.Column("thumbnail", sa.LargeBinary(), nullable=True),
        sa.Column("metadata_status", sa.String(length=16), nullable=False),
        sa.Column("metadata_score", sa.Float(), nullable=False),
        sa.Column("image_score", sa.Float(), nullable=True),
        sa.Column("fused_score", sa.Float(), nullable=False),
        sa.Column("verdict", sa.String(length=8), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("decided_by", sa.String(length=128), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("series_uid"),
    )
    op.create_index("ix_qc_series_trial_verdict", "qc_series", ["trial_id", "verdict"])
    op.create_index("ix_qc_series_deid", "qc_series", ["deid_series_uid"])


def downgrade() -> None:
    op.drop_index("ix_qc_series_deid", table_name="qc_series")
    op.drop_index("ix_qc_series_trial_verdict", table_name="qc_series")
    op.drop_table("qc_series")
