"""Tables of the trial domain and the pipeline, in the one index database.

Lists (modalities, regions, hosts, members) are JSON text: they are read and
written whole by configuration-as-code and never queried element by element.
Times the scheduler compares (``run_after``, ``lease_until``) are epoch
seconds, which compare the same way on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from trialpacs.index.models import Base, utcnow

# Collections of the index (the ``studies.collection`` marker).
PUBLISHED = "published"
QUARANTINE = "quarantine"
UNASSIGNED = "unassigned"


class Region(Base):
    __tablename__ = "regions"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    region_id: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(String(256), default="")


class StorageBackend(Base):
    """A named blob store bound to a region; ``options`` holds path or bucket settings."""

    __tablename__ = "storage_backends"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    region_id: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(16))  # identified | deidentified
    options: Mapped[str] = mapped_column(Text, default="{}")


class DeidProfileDef(Base):
    """A trial's de-identification profile as configured (a deid profile mapping)."""

    __tablename__ = "deid_profiles"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    definition: Mapped[str] = mapped_column(Text, default="{}")


class Site(Base):
    __tablename__ = "sites"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    region_id: Mapped[str] = mapped_column(String(64))
    identified_backend: Mapped[str | None] = mapped_column(String(64), nullable=True)
    hosts: Mapped[str] = mapped_column(Text, default="[]")


class Trial(Base):
    __tablename__ = "trials"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[str] = mapped_column(String(64), unique=True)  # protocol ID
    name: Mapped[str] = mapped_column(String(128), default="")
    sponsor: Mapped[str] = mapped_column(String(128), default="")
    profile: Mapped[str] = mapped_column(String(64), default="trial")
    deid_regions: Mapped[str] = mapped_column(Text, default="[]")
    ae_title: Mapped[str | None] = mapped_column(String(16), nullable=True, unique=True)
    # De-identified backends published data is also copied to (JSON list of names).
    publish_to: Mapped[str] = mapped_column(Text, default="[]", server_default="[]")
    # The trial's anatomy QC block (JSON of the keys it sets; migration 0012).
    qc: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")
    # Where readers' measurement reports go: workspace | trial (migration 0019).
    reader_reports: Mapped[str] = mapped_column(
        String(16), default="workspace", server_default="workspace"
    )


class TrialSite(Base):
    """A site enrolled in a trial, optionally with its own called AE title."""

    __tablename__ = "trial_sites"
    __table_args__ = (UniqueConstraint("trial_pk", "site_pk", name="uq_trial_site"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_pk: Mapped[int] = mapped_column(ForeignKey("trials.pk", ondelete="CASCADE"))
    site_pk: Mapped[int] = mapped_column(ForeignKey("sites.pk", ondelete="CASCADE"))
    ae_title: Mapped[str | None] = mapped_column(String(16), nullable=True, unique=True)


class TimePoint(Base):
    __tablename__ = "timepoints"
    __table_args__ = (UniqueConstraint("trial_pk", "timepoint_id", name="uq_trial_timepoint"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_pk: Mapped[int] = mapped_column(ForeignKey("trials.pk", ondelete="CASCADE"))
    timepoint_id: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(128), default="")
    position: Mapped[int] = mapped_column(Integer, default=0)
    modalities: Mapped[str] = mapped_column(Text, default="[]")
    anatomy: Mapped[str] = mapped_column(Text, default="[]")
    # Rule-based assignment: days after the subject's baseline study (inclusive).
    window_start_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    window_end_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Sequence families the visit expects (JSON list; anatomy QC; migration 0012).
    expected_series: Mapped[str] = mapped_column(Text, default="[]", server_default="[]")


class Subject(Base):
    """A trial subject: only a keyed hash of the patient identity and the pseudonym."""

    __tablename__ = "subjects"
    __table_args__ = (
        UniqueConstraint("trial_id", "scope", "identity_hash", name="uq_subject_identity"),
        UniqueConstraint("trial_id", "pseudonym", name="uq_subject_pseudonym"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(140))
    identity_hash: Mapped[str] = mapped_column(String(64))
    number: Mapped[int] = mapped_column(Integer)
    pseudonym: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RoleMapping(Base):
    """Who may see what: trials visible, sites whose identified data may be seen."""

    __tablename__ = "role_mappings"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    role: Mapped[str] = mapped_column(String(64), unique=True)
    members: Mapped[str] = mapped_column(Text, default="[]")
    trials: Mapped[str] = mapped_column(Text, default="[]")
    phi_sites: Mapped[str] = mapped_column(Text, default="[]")


class PipelineSeries(Base):
    """Where one identified series is on its way to publication."""

    __tablename__ = "pipeline_series"
    __table_args__ = (
        Index("ix_pipeline_series_trial_site", "trial_id", "site_id"),
        Index("ix_pipeline_series_study_state", "study_uid", "state"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    series_uid: Mapped[str] = mapped_column(String(64), unique=True)
    study_uid: Mapped[str] = mapped_column(String(64))
    trial_id: Mapped[str] = mapped_column(String(64))
    site_id: Mapped[str] = mapped_column(String(64))
    # queued | processing | published | held_qc | needs_attention
    state: Mapped[str] = mapped_column(String(24), default="queued")
    seen_instances: Mapped[int] = mapped_column(Integer, default=0)
    published_instances: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str] = mapped_column(Text, default="")
    subject: Mapped[str] = mapped_column(String(64), default="")
    published_study_uid: Mapped[str] = mapped_column(String(64), default="")
    published_series_uid: Mapped[str] = mapped_column(String(64), default="")
    # The visit the series was published under ('' = unassigned) and how it was
    # decided: request (STOW/import/DIMSE intake), data, study (another series of
    # the same study), rule (date window after baseline).
    timepoint_id: Mapped[str] = mapped_column(String(64), default="", server_default="")
    timepoint_source: Mapped[str] = mapped_column(String(16), default="", server_default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Job(Base):
    """The durable job table both executors work from."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("kind", "key", name="uq_job_key"),
        Index("ix_jobs_state_run_after", "state", "run_after"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(128))
    payload: Mapped[str] = mapped_column(Text, default="{}")
    # pending | running | done | needs_attention
    state: Mapped[str] = mapped_column(String(24), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    run_after: Mapped[float] = mapped_column(Float, default=0.0)
    lease_until: Mapped[float] = mapped_column(Float, default=0.0)
    locked_by: Mapped[str] = mapped_column(String(128), default="")
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PipelineEvent(Base):
    """Refusals and outcomes worth showing later (residency, unassigned data, failures)."""

    __tablename__ = "pipeline_events"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    kind: Mapped[str] = mapped_column(String(48))
    trial_id: Mapped[str] = mapped_column(String(64), default="")
    site_id: Mapped[str] = mapped_column(String(64), default="")
    subject: Mapped[str] = mapped_column(String(255), default="")
    detail: Mapped[str] = mapped_column(Text, default="")
