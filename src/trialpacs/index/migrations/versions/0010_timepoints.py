"""time points: studies and pipeline series carry their visit; rule windows per time point

``studies.timepoint_id`` is the ClinicalTrialTimePointID of a study: the
visit named at intake (STOW ``?timepoint=``, ``import --timepoint``) or in
the data for identified studies, and the one the pipeline wrote for
published studies, so QIDO can match on it. ``pipeline_series`` records
which visit a series was published under and how that was decided.
``trials.publish_to`` lists the de-identified backends a trial's published
data is also copied to (each in one of its ``deid_regions``).

Revision ID: 0010
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("studies") as batch:
        batch.add_column(
            sa.Column("timepoint_id", sa.String(length=64), nullable=False, server_default="")
        )
        batch.create_index("ix_studies_timepoint", ["trial_id", "timepoint_id"])
    with op.batch_alter_table("pipeline_series") as batch:
        batch.add_column(
            sa.Column("timepoint_id", sa.String(length=64), nullable=False, server_default="")
        )
        batch.add_column(
            sa.Column("timepoint_source", sa.String(length=16), nullable=False, server_default="")
        )
    with op.batch_alter_table("timepoints") as batch:
        batch.add_column(sa.Column("window_start_days", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("window_end_days", sa.Integer(), nullable=True))
    with op.batch_alter_table("trials") as batch:
        batch.add_column(sa.Column("publish_to", sa.Text(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        batch.drop_column("publish_to")
    with op.batch_alter_table("timepoints") as batch:
        batch.drop_column("window_end_days")
        batch.drop_column("window_start_days")
    with op.batch_alter_table("pipeline_series") as batch:
        batch.drop_column("timepoint_source")
        batch.drop_column("timepoint_id")
    with op.batch_alter_table("studies") as batch:
        batch.drop_index("ix_studies_timepoint")
        batch.drop_column("timepoint_id")
