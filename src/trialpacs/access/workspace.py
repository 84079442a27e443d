"""Private workspaces: each user's files, viewer settings and annotations.

Bytes live in the blob store under a prefix derived from the user (never
from a client-supplied name), rows in ``workspace_files``. Every call names
the caller and the owner and asks the policy, so the same code serves the
owner (read/write) and an administrator removing a departed user's
workspace (delete only, never read). A refusal is a NotFound.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from trialpacs.access import events
from trialpacs.access.clock import now
from trialpacs.access.models import User, WorkspaceFile
from trialpacs.access.policy import Action, Principal, Resource, decide
from trialpacs.errors import InvalidInput, NotFound, TooLarge
from trialpacs.index.db import Database
from trialpacs.storage import BlobStore

KINDS = ("file", "settings", "annotation")
MAX_NAME = 255


@dataclass(frozen=True)
class Entry:
    kind: str
    name: str
    size: int
    content_type: str
    sha256: str
    updated_at: datetime


def check_name(name: str) -> str:
    if not 1 <= len(name) <= MAX_NAME or any(c in name for c in "/\\") or name in (".", ".."):
        raise InvalidInput("a workspace name is 1-255 characters without '/' or '\\'")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise InvalidInput("a workspace name must not contain control characters")
    return name


def _prefix(username: str) -> str:
    return "workspaces/" + hashlib.sha256(username.encode()).hexdigest()[:32]


def _entry(row: WorkspaceFile) -> Entry:
    return Entry(row.kind, row.name, row.size, row.content_type, row.sha256, row.updated_at)


class Workspaces:
    def __init__(self, db: Database, store: BlobStore, quota_bytes: int) -> None:
        self.db = db
        self.store = store
        self.quota = quota_bytes

    def _check(self, principal: Principal, action: Action, owner: str, kind: str) -> None:
        if kind not in KINDS:
            raise NotFound("not found")
        if not decide(principal, action, Resource(kind="workspace", owner=owner)):
            raise NotFound("not found")

    def _owner_pk(self, owner: str) -> int:
        with self.db.read() as session:
            pk = session.scalars(select(User.pk).where(User.username == owner)).first()
        if pk is None:
            raise NotFound("not found")
        return pk

    def usage(self, principal: Principal, owner: str) -> int:
        self._check(principal, "workspace.read", owner, "file")
        user_pk = self._owner_pk(owner)
        with self.db.read() as session:
            used = session.scalar(
                select(func.coalesce(func.sum(WorkspaceFile.size), 0)).where(
                    WorkspaceFile.user_pk == user_pk
                )
            )
        return int(used or 0)

    def put(
        self,
        principal: Principal,
        owner: str,
        kind: str,
        name: str,
        data: bytes,
        content_type: str = "application/octet-stream",
    ) -> Entry:
        self._check(principal, "workspace.write", owner, kind)
        check_name(name)
        user_pk = self._owner_pk(owner)
        key = f"{_prefix(owner)}/{kind}/{uuid.uuid4().hex}"
        digest = hashlib.sha256(data).hexdigest()
        self.store.put(key, data)
        old_key: str | None = None
        try:
            with self.db.write() as session:
                row = session.scalars(
                    select(WorkspaceFile).where(
                        WorkspaceFile.user_pk == user_pk,
                        WorkspaceFile.kind == kind,
                        WorkspaceFile.name == name,
                    )
                ).first()
                used = session.scalar(
                    select(func.coalesce(func.sum(WorkspaceFile.size), 0)).where(
                        WorkspaceFile.user_pk == user_pk
                    )
                )
                total = int(used or 0) - (row.size if row else 0) + len(data)
                if total > self.quota:
                    raise TooLarge(
                        f"the workspace quota of {self.quota} bytes would be exceeded "
                        f"({total} bytes)"
                    )
                if row is None:
                    row = WorkspaceFile(user_pk=user_pk, kind=kind, name=name)
                    session.add(row)
                else:
                    old_key = row.blob_key
                row.blob_key = key
                row.size = len(data)
                row.sha256 = digest
                row.content_type = content_type[:128]
                row.updated_at = now()
                session.flush()
                entry = _entry(row)
        except BaseException:
            self.store.delete(key)
            raise
        if old_key:
            self.store.delete(old_key)
        return entry

    def list(self, principal: Principal, owner: str, kind: str) -> list[Entry]:
        self._check(principal, "workspace.read", owner, kind)
        user_pk = self._owner_pk(owner)
        with self.db.read() as session:
            rows = session.scalars(
                select(WorkspaceFile)
                .where(WorkspaceFile.user_pk == user_pk, WorkspaceFile.kind == kind)
                .order_by(WorkspaceFile.name)
            ).all()
            return [_entry(r) for r in rows]

    def get(self, principal: Principal, owner: str, kind: str, name: str) -> tuple[Entry, bytes]:
        self._check(principal, "workspace.read", owner, kind)
        user_pk = self._owner_pk(owner)
        with self.db.read() as session:
            row = session.scalars(
                select(WorkspaceFile).where(
                    WorkspaceFile.user_pk == user_pk,
                    WorkspaceFile.kind == kind,
                    WorkspaceFile.name == name,
                )
            ).first()
            if row is None:
                raise NotFound("not found")
            entry, key = _entry(row), row.blob_key
        try:
            return entry, self.store.get(key)
        except KeyError:
            raise NotFound("not found") from None

    def delete(self, principal: Principal, owner: str, kind: str, name: str) -> None:
        self._check(principal, "workspace.delete", owner, kind)
        user_pk = self._owner_pk(owner)
        with self.db.write() as session:
            row = session.scalars(
                select(WorkspaceFile).where(
                    WorkspaceFile.user_pk == user_pk,
                    WorkspaceFile.kind == kind,
                    WorkspaceFile.name == name,
                )
            ).first()
            if row is None:
                raise NotFound("not found")
            key = row.blob_key
            session.delete(row)
        self.store.delete(key)

    def delete_all(self, principal: Principal, owner: str) -> int:
        """Remove everything of ``owner`` (the owner, or an administrator for a departed user)."""
        self._check(principal, "workspace.delete", owner, "file")
        user_pk = self._owner_pk(owner)
        with self.db.write() as session:
            rows = session.scalars(
                select(WorkspaceFile).where(WorkspaceFile.user_pk == user_pk)
            ).all()
            keys = [r.blob_key for r in rows]
            for r in rows:
                session.delete(r)
            events.record(
                session,
                "workspace.delete",
                owner,
                actor=principal.subject,
                detail=f"{len(keys)} item(s)",
            )
        for key in keys:
            self.store.delete(key)
        return len(keys)
