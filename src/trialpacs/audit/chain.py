"""The hash chain: append under a lock, verify from the first entry.

The hash of an entry is SHA-256 over canonical JSON (sorted keys, no
whitespace, UTF-8) of every stored field but ``hash`` itself, which includes
``seq`` and ``prev_hash``. So changing a field, deleting or inserting a row
(sequence gap or wrong predecessor), or swapping rows all break the chain at
the first affected entry, and that is the entry ``verify`` names.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    bindparam,
    false,
    insert,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.orm import Session

from trialpacs.audit.models import AuditChainHead, AuditEntry
from trialpacs.index.db import Database

GENESIS = "0" * 64
HASHED_FIELDS = (
    "seq",
    "at",
    "actor",
    "roles",
    "address",
    "agent",
    "action",
    "outcome",
    "trial",
    "site",
    "study",
    "series",
    "sop",
    "object",
    "old_value",
    "new_value",
    "reason",
    "detail",
    "prev_hash",
)
_LIMITS = {
    "actor": 128,
    "address": 64,
    "agent": 256,
    "action": 128,
    "outcome": 16,
    "trial": 64,
    "site": 64,
    "study": 64,
    "series": 64,
    "sop": 64,
    "object": 256,
}


@dataclass
class AuditEvent:
    """What happened, as the server saw it; the time and chain are added on append."""

    action: str
    outcome: str = "success"
    actor: str = ""
    roles: Sequence[str] = ()
    address: str = ""
    agent: str = ""
    trial: str = ""
    site: str = ""
    study: str = ""
    series: str = ""
    sop: str = ""
    object: str = ""
    old_value: str = ""
    new_value: str = ""
    reason: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Broken:
    seq: int
    reason: str


@dataclass(frozen=True)
class VerifyResult:
    entries: int
    last_hash: str
    broken: Broken | None = None
    checkpoints: int = 0

    @property
    def ok(self) -> bool:
        return self.broken is None


def canonical(values: dict[str, Any]) -> bytes:
    return json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(values: dict[str, Any]) -> str:
    return hashlib.sha256(canonical({k: values[k] for k in HASHED_FIELDS})).hexdigest()


def utc_iso(now: datetime | None = None) -> str:
    """Microsecond UTC with a Z, fixed width so text order is time order."""
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _values(event: AuditEvent, seq: int, prev: str, at: str) -> dict[str, Any]:
    raw = asdict(event)
    values: dict[str, Any] = {
        k: str(raw[k] or "")[: _LIMITS[k]] if k in _LIMITS else str(raw[k] or "")
        for k in (
            "actor",
            "address",
            "agent",
            "action",
            "outcome",
            "trial",
            "site",
            "study",
            "series",
            "sop",
            "object",
            "old_value",
            "new_value",
            "reason",
        )
    }
    values["roles"] = ",".join(sorted(event.roles))
    values["detail"] = (
        json.dumps(event.detail, sort_keys=True, separators=(",", ":")) if event.detail else ""
    )
    values.update(seq=seq, at=at, prev_hash=prev)
    values["hash"] = entry_hash(values)
    return values


def append(session: Session, event: AuditEvent, now: datetime | None = None) -> dict[str, Any]:
    """Append in the caller's transaction (so the event commits with the change it records)."""
    return append_many(session, [event], now)[0]


def append_many(
    session: Session, events: Sequence[AuditEvent], now: datetime | None = None
) -> list[dict[str, Any]]:
    """Append several entries, in order, with one head lock, one insert and one head update.

    The UPDATE of the head row comes first: on PostgreSQL it row-locks the
    head until commit, on SQLite it takes the database write lock, so two
    appenders (threads, processes or servers) can never read the same head.
    Core statements on the session's connection: this runs inside every
    store transaction, where the ORM's statement handling costs more than the SQL.
    """
    if not events:
        return []
    conn = session.connection()
    head = conn.execute(_LOCK_HEAD).first()
    if head is None:
        conn.execute(insert(_HEAD).values(id=1, seq=0, hash=GENESIS))
        seq, prev = 0, GENESIS
    else:
        seq, prev = int(head.seq), str(head.hash)
    at = utc_iso(now)
    rows: list[dict[str, Any]] = []
    for event in events:
        seq += 1
        values = _values(event, seq, prev, at)
        prev = values["hash"]
        rows.append(values)
    conn.execute(_INSERT_ENTRY, rows[0] if len(rows) == 1 else rows)
    conn.execute(_MOVE_HEAD, {"new_seq": seq, "new_hash": prev})
    return rows


# Built once: this runs inside every store transaction. The first statement
# both locks the head (row lock on PostgreSQL, write lock on SQLite) and reads it.
_HEAD = cast(Table, AuditChainHead.__table__)
_LOCK_HEAD = (
    update(_HEAD).where(_HEAD.c.id == 1).values(id=1).returning(_HEAD.c.seq, _HEAD.c.hash)
)
_INSERT_ENTRY = insert(cast(Table, AuditEntry.__table__))
_MOVE_HEAD = (
    update(_HEAD)
    .where(_HEAD.c.id == 1)
    .values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
)


def record(db: Database, event: AuditEvent) -> dict[str, Any]:
    """Append in a transaction of its own (for adapters that have no open session)."""
    with db.write() as session:
        return append(session, event)


def _rows(db: Database, batch: int = 5000) -> Iterator[AuditEntry]:
    last = -1
    while True:
        with db.read() as session:
            rows = session.scalars(
                select(AuditEntry)
                .where(AuditEntry.seq > last)
                .order_by(AuditEntry.seq)
                .limit(batch)
            ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


def row_values(row: AuditEntry) -> dict[str, Any]:
    return {k: getattr(row, k) for k in (*HASHED_FIELDS, "hash")}


def verify(db: Database) -> VerifyResult:
    """Walk the chain; the first entry that does not follow from its predecessor is named."""
    prev = GENESIS
    expected = 1
    count = 0
    for row in _rows(db):
        values = row_values(row)
        if row.seq != expected:
            reason = (
                f"entry {expected} is missing (next is {row.seq})"
                if row.seq > expected
                else f"unexpected sequence number {row.seq}"
            )
            return VerifyResult(count, prev, Broken(expected, reason))
        if row.prev_hash != prev:
            return VerifyResult(
                count,
                prev,
                Broken(
                    row.seq, "does not link to the previous entry (deleted, inserted or reordered)"
                ),
            )
        if entry_hash(values) != row.hash:
            return VerifyResult(count, prev, Broken(row.seq, "content changed (hash mismatch)"))
        prev = row.hash
        expected += 1
        count += 1
    with db.read() as session:
        head = session.get(AuditChainHead, 1)
    head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS)
    if head_seq != count or head_hash != prev:
        return VerifyResult(
            count,
            prev,
            Broken(
                count + 1, f"chain head says entry {head_seq} is the last: newest entries deleted"
            ),
        )
    return VerifyResult(count, prev)


@dataclass
class Filter:
    user: str | None = None
    trial: str | None = None
    site: str | None = None
    action: str | None = None
    object: str | None = None
    since: str | None = None
    until: str | None = None
    limit: int | None = None
    offset: int = 0
    # Newest entry first, so offset/limit page backwards from the latest (a reader's view).
    newest_first: bool = False
    # (trial, site) slices the reader may see; None: all of it. An entry is in
    # a trial's slice when it names the trial, or a study the index places there.
    scopes: Sequence[tuple[str | None, str | None]] | None = None


def query(db: Database, flt: Filter | None = None) -> list[dict[str, Any]]:
    """Entries matching every given filter, oldest first; times compare as ISO text."""
    flt = flt or Filter()
    stmt = select(AuditEntry)
    if flt.scopes is not None:
        stmt = stmt.where(_in_scopes(flt.scopes))
    if flt.user:
        stmt = stmt.where(AuditEntry.actor == flt.user)
    if flt.trial:
        stmt = stmt.where(AuditEntry.trial == flt.trial)
    if flt.site:
        stmt = stmt.where(AuditEntry.site == flt.site)
    if flt.action:
        stmt = stmt.where(AuditEntry.action.like(flt.action.replace("*", "%")))
    if flt.object:
        o = flt.object
        stmt = stmt.where(
            (AuditEntry.study == o)
            | (AuditEntry.series == o)
            | (AuditEntry.sop == o)
            | (AuditEntry.object == o)
        )
    if flt.since:
        stmt = stmt.where(AuditEntry.at >= _iso_bound(flt.since))
    if flt.until:
        stmt = stmt.where(AuditEntry.at < _iso_bound(flt.until))
    stmt = stmt.order_by(AuditEntry.seq.desc() if flt.newest_first else AuditEntry.seq)
    if flt.offset:
        stmt = stmt.offset(flt.offset)
    if flt.limit:
        stmt = stmt.limit(flt.limit)
    with db.read() as session:
        return [row_values(r) for r in session.scalars(stmt).all()]


def _in_scopes(scopes: Sequence[tuple[str | None, str | None]]) -> ColumnElement[bool]:
    from trialpacs.index.models import Study

    conds: list[ColumnElement[bool]] = []
    for trial, site in scopes:
        if trial is None and site is None:
            return true()
        named = true() if trial is None else AuditEntry.trial == trial
        placed = select(Study.study_uid)
        if trial is not None:
            placed = placed.where(Study.trial_id == trial)
        if site is not None:
            named = and_(named, AuditEntry.site == site)
            placed = placed.where(Study.site_id == site)
        conds.append(
            or_(
                named if trial is not None else AuditEntry.site == site,
                AuditEntry.study.in_(placed),
            )
        )
    return or_(*conds) if conds else false()


def _iso_bound(text: str) -> str:
    """Accepts a date or an ISO time (naive means UTC); returns the stored text form."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return utc_iso(dt)


def query_after(db: Database, seq: int, limit: int) -> list[dict[str, Any]]:
    """Entries after ``seq`` in chain order (for forwarders that keep a cursor)."""
    with db.read() as session:
        rows = session.scalars(
            select(AuditEntry).where(AuditEntry.seq > seq).order_by(AuditEntry.seq).limit(limit)
        ).all()
        return [row_values(r) for r in rows]
