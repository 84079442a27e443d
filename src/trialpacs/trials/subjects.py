"""Subject pseudonyms per trial, kept in the index so every worker agrees.

The deid engine asks a registry for a subject's ID; this one stores only the
engine's keyed hash of the patient identity and the pseudonym, never the
identity itself, and hands out numbers per scope (trial|site) in a
transaction, so concurrent jobs (threads, Celery workers on other machines)
give one patient one pseudonym.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from trialpacs.index.db import Database
from trialpacs.trials.models import Subject


class DbSubjectRegistry:
    def __init__(self, db: Database, trial_id: str) -> None:
        self.db = db
        self.trial_id = trial_id

    def subject_id(
        self, scope: str, key: bytes, details: dict[str, str], make_id: Callable[[int], str]
    ) -> str:
        digest = key.hex()[:64]
        for _ in range(20):
            found = self._find(scope, digest)
            if found is not None:
                return found
            try:
                with self.db.write() as session:
                    n = (
                        session.scalar(
                            select(func.max(Subject.number)).where(
                                Subject.trial_id == self.trial_id, Subject.scope == scope
                            )
                        )
                        or 0
                    ) + 1
                    pseudonym = make_id(n)
                    session.add(
                        Subject(
                            trial_id=self.trial_id,
                            scope=scope,
                            identity_hash=digest,
                            number=n,
                            pseudonym=pseudonym,
                        )
                    )
                return pseudonym
            except IntegrityError:
                continue  # another worker took this number or this subject: look again
        raise RuntimeError(f"could not allocate a subject ID in {scope!r}")

    def _find(self, scope: str, digest: str) -> str | None:
        with self.db.read() as session:
            return session.scalar(
                select(Subject.pseudonym).where(
                    Subject.trial_id == self.trial_id,
                    Subject.scope == scope,
                    Subject.identity_hash == digest,
                )
            )
