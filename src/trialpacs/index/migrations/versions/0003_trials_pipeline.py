"""trials, sites, storage backends, subjects, pipeline jobs; collections on studies

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "regions",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("region_id", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("region_id"),
    )
    op.create_table(
        "storage_backends",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("region_id", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("options", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "deid_profiles",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("definition", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "sites",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("region_id", sa.String(length=64), nullable=False),
        sa.Column("identified_backend", sa.String(length=64), nullable=True),
        sa.Column("hosts", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("site_id"),
    )
    op.create_table(
        "trials",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("trial_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("sponsor", sa.String(length=128), nullable=False),
        sa.Column("profile", sa.String(length=64), nullable=False),
        sa.Column("deid_regions", sa.Text(), nullable=False),
        sa.Column("ae_title", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("trial_id"),
        sa.UniqueConstraint("ae_title"),
    )
    op.create_table(
        "trial_sites",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("trial_pk", sa.Integer(), nullable=False),
        sa.Column("site_pk", sa.Integer(), nullable=False),
        sa.Column("ae_title", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(["trial_pk"], ["trials.pk"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["site_pk"], ["sites.pk"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("trial_pk", "site_pk", name="uq_trial_site"),
        sa.UniqueConstraint("ae_title"),
    )
    op.create_table(
        "timepoints",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("trial_pk", sa.Integer(), nullable=False),
        sa.Column("timepoint_id", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=128), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("modalities", sa.Text(), nullable=False),
        sa.Column("anatomy", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["trial_pk"], ["trials.pk"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("trial_pk", "timepoint_id", name="uq_trial_timepoint"),
    )
    op.create_table(
        "subjects",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("trial_id", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=140), nullable=False),
        sa.Column("identity_hash", sa.String(length=64), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("pseudonym", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("trial_id", "scope", "identity_hash", name="uq_subject_identity"),
        sa.UniqueConstraint("trial_id", "pseudonym", name="uq_subject_pseudonym"),
    )
    op.create_table(
        "role_mappings",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=64), nullable=False),
        sa.Column("members", sa.Text(), nullable=False),
        sa.Column("trials", sa.Text(), nullable=False),
        sa.Column("phi_sites", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("role"),
    )
    op.create_table(
        "pipeline_series",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("series_uid", sa.String(length=64), nullable=False),
        sa.Column("study_uid", sa.String(length=64), nullable=False),
        sa.Column("trial_id", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("seen_instances", sa.Integer(), nullable=False),
        sa.Column("published_instances", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("published_study_uid", sa.String(length=64), nullable=False),
        sa.Column("published_series_uid", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("series_uid"),
    )
    op.create_index(
        "ix_pipeline_series_trial_site", "pipeline_series", ["trial_id", "site_id"], unique=False
    )
    op.create_table(
        "jobs",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("run_after", sa.Float(), nullable=False),
        sa.Column("lease_until", sa.Float(), nullable=False),
        sa.Column("locked_by", sa.String(length=128), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("kind", "key", name="uq_job_key"),
    )
    op.create_index("ix_jobs_state_run_after", "jobs", ["state", "run_after"], unique=False)
    op.create_table(
        "pipeline_events",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=48), nullable=False),
        sa.Column("trial_id", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index("ix_pipeline_events_at", "pipeline_events", ["at"], unique=False)
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "collection", sa.String(length=16), nullable=False, server_default="published"
            )
        )
        batch_op.add_column(sa.Column("trial_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("site_id", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_studies_collection"), ["collection"], unique=False)
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("store", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_column("store")
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_studies_collection"))
        batch_op.drop_column("site_id")
        batch_op.drop_column("trial_id")
        batch_op.drop_column("collection")
    op.drop_index("ix_pipeline_events_at", table_name="pipeline_events")
    op.drop_table("pipeline_events")
    op.drop_index("ix_jobs_state_run_after", table_name="jobs")
    op.drop_table("jobs")
    op.drop_index("ix_pipeline_series_trial_site", table_name="pipeline_series")
    op.drop_table("pipeline_series")
    op.drop_table("role_mappings")
    op.drop_table("subjects")
    op.drop_table("timepoints")
    op.drop_table("trial_sites")
    op.drop_table("trials")
    op.drop_table("sites")
    op.drop_table("deid_profiles")
    op.drop_table("storage_backends")
    op.drop_table("regions")
