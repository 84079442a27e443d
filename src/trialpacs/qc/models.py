"""The QC table: one row per series the anatomy QC has seen.

It keeps the verdict and what the image layer needs to compare later series
(features of the de-identified pixels, a thumbnail), never the header text the
metadata layer read: that was identified data and stays in the quarantine.
``series_uid`` is the pipeline's key (the identified Series Instance UID) and
is never shown; people see the de-identified UIDs.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Float, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from trialpacs.index.models import Base, utcnow


class QcSeries(Base):
    __tablename__ = "qc_series"
    __table_args__ = (
        Index("ix_qc_series_trial_verdict", "trial_id", "verdict"),
        Index("ix_qc_series_deid", "deid_series_uid"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    series_uid: Mapped[str] = mapped_column(String(64), unique=True)
    deid_series_uid: Mapped[str] = mapped_column(String(64))
    deid_study_uid: Mapped[str] = mapped_column(String(64), default="")
    trial_id: Mapped[str] = mapped_column(String(64))
    site_id: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(64), default="")
    timepoint: Mapped[str] = mapped_column(String(64), default="")
    modality: Mapped[str] = mapped_column(String(16), default="")
    stratum: Mapped[str] = mapped_column(String(64), default="")
    features: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    thumbnail: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    metadata_status: Mapped[str] = mapped_column(String(16), default="unknown")
    metadata_score: Mapped[float] = mapped_column(Float, default=0.5)
    image_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    fused_score: Mapped[float] = mapped_column(Float, default=0.0)
    verdict: Mapped[str] = mapped_column(String(8))  # pass | hold
    reasons: Mapped[str] = mapped_column(Text, default="[]")
    decision: Mapped[str] = mapped_column(String(16), default="")  # "" | approved | rejected
    decided_by: Mapped[str] = mapped_column(String(128), default="")
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    decision_reason: Mapped[str] = mapped_column(Text, default="")
    signature: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
