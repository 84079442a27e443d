"""Merge the feature migrations 0006-0019 into one head.

Each feature of the second development round added its migration on top of
0005 so they could land independently.  This revision joins those branches
so the history has a single head again: later migrations build on 0020, and
``trialpacs db current`` prints one revision.  It changes no schema.

Revision ID: 0020
Revises: 0006, 0008, 0009, 0010, 0011, 0012, 0018, 0019
"""

from __future__ import annotations

revision = "0020"
down_revision = ("0006", "0008", "0009", "0010", "0011", "0012", "0018", "0019")
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing to change: a merge point only."""


def downgrade() -> None:
    """Nothing to change: a merge point only."""
