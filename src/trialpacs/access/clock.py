"""UTC time that compares the same on SQLite (naive) and PostgreSQL (aware)."""

from __future__ import annotations

from datetime import UTC, datetime


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes for UTC values we wrote; make them aware."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def now() -> datetime:
    return datetime.now(UTC)
