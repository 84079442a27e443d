"""pipeline_series (study_uid, state): a study's pipeline status without a scan

The worklist shows an identified study's least advanced series state and
filters on it in SQL (EXISTS per study), and the study page reads it too;
without this index each of those scans every series in the pipeline.

Revision ID: 0023
Revises: 0020
"""

from __future__ import annotations

from alembic import op

revision = "0023"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_pipeline_series_study_state", "pipeline_series", ["study_uid", "state"])


def downgrade() -> None:
    op.drop_index("ix_pipeline_series_study_state", table_name="pipeline_series")
