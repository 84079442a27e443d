"""The read_assignments table (migration 0009)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from trialpacs.index.models import Base, utcnow


class ReadAssignment(Base):
    __tablename__ = "read_assignments"
    __table_args__ = (
        Index("ix_read_assignments_reader", "reader", "status"),
        Index("ix_read_assignments_trial", "trial_id", "study_uid"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[str] = mapped_column(String(64))
    study_uid: Mapped[str] = mapped_column(String(64))
    reader: Mapped[str] = mapped_column(String(128))
    assigned_by: Mapped[str] = mapped_column(String(128))
    assigned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default="assigned")  # assigned | signed
    findings: Mapped[str] = mapped_column(Text, default="")
    signature: Mapped[str] = mapped_column(Text, default="")  # JSON of audit.signatures.Signature
    signed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
