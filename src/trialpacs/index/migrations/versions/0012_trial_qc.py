"""trials.qc: the anatomy QC block of a trial's configuration; timepoints.expected_series

Stored as JSON of the keys the trial sets, so the installation-wide default
(setting ``qc_thresholds``) still fills the others. ``timepoints.expected_series``
lists the sequence families a visit expects (JSON), so a localizer can be told
from the diagnostic series.

Revision ID: 0012
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        batch.add_column(sa.Column("qc", sa.Text(), nullable=False, server_default="{}"))
    with op.batch_alter_table("timepoints") as batch:
        batch.add_column(
            sa.Column("expected_series", sa.Text(), nullable=False, server_default="[]")
        )


def downgrade() -> None:
    with op.batch_alter_table("timepoints") as batch:
        batch.drop_column("expected_series")
    with op.batch_alter_table("trials") as batch:
        batch.drop_column("qc")
