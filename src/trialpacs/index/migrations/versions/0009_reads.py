"""reads: read assignments (a study given to a reader, signed when read)

Revision ID: 0009
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "read_assignments",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("trial_id", sa.String(length=64), nullable=False),
        sa.Column("study_uid", sa.String(length=64), nullable=False),
        sa.Column("reader", sa.String(length=128), nullable=False),
        sa.Column("assigned_by", sa.String(length=128), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("findings", sa.Text(), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index("ix_read_assignments_reader", "read_assignments", ["reader", "status"])
    op.create_index("ix_read_assignments_trial", "read_assignments", ["trial_id", "study_uid"])


def downgrade() -> None:
    op.drop_index("ix_read_assignments_trial", table_name="read_assignments")
    op.drop_index("ix_read_assignments_reader", table_name="read_assignments")
    op.drop_table("read_assignments")
