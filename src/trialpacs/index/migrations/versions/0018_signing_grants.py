"""signing grants: one-time proof of a forced SSO re-authentication for an e-signature

Revision ID: 0018
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signing_grants",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("handle", sa.String(length=128), nullable=False),
        sa.Column("username", sa.String(length=128), nullable=False),
        sa.Column("purpose", sa.String(length=256), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("authenticated_at", sa.Float(), nullable=True),
        sa.Column("used_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index("ix_signing_grants_handle", "signing_grants", ["handle"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_signing_grants_handle", table_name="signing_grants")
    op.drop_table("signing_grants")
