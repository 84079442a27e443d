"""Tables of research exports: saved cohort versions and the export history.

A cohort version is immutable once saved: re-running it later must select by
the same rules, so a change is a new version, never an update.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from trialpacs.index.models import Base, utcnow


class SavedCohort(Base):
    __tablename__ = "export_cohorts"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_export_cohort_version"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    trial_id: Mapped[str] = mapped_column(String(64), index=True)
    definition: Mapped[str] = mapped_column(Text)  # canonical JSON of the definition
    digest: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ExportRun(Base):
    """One export: who, which cohort version, how many items, where to."""

    __tablename__ = "export_runs"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    export_id: Mapped[str] = mapped_column(String(32), unique=True)
    cohort_name: Mapped[str] = mapped_column(String(64))
    cohort_version: Mapped[int] = mapped_column(Integer)
    trial_id: Mapped[str] = mapped_column(String(64), index=True)
    actor: Mapped[str] = mapped_column(String(128))
    destination_kind: Mapped[str] = mapped_column(String(16))  # local | s3 | download
    destination: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="running")  # running | done | failed
    series_count: Mapped[int] = mapped_column(Integer, default=0)
    instance_count: Mapped[int] = mapped_column(Integer, default=0)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    manifest_sha256: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
