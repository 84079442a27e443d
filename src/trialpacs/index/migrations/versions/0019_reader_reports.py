"""trials.reader_reports: where a reader's measurement report (DICOM SR) goes

``workspace`` (the default): the reader's private workspace only;
``trial``: stored into the trial's de-identified archive as a new series of
the study, served over DICOMweb to the trial's users.
``users.password_change_required``: the account has a temporary password.

Revision ID: 0019
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        batch.add_column(
            sa.Column(
                "reader_reports", sa.String(length=16), nullable=False, server_default="workspace"
            )
        )
    # A temporary password set by an administrator must be replaced at first sign-in.
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column(
                "password_change_required",
                sa.Boolean(),
                nullable=False,
                server_default=sa.false(),
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("password_change_required")
    with op.batch_alter_table("trials") as batch:
        batch.drop_column("reader_reports")
