"""The archive: one index, one blob store, one set of settings.

Every adapter (HTTP, DIMSE, CLI, jobs) gets an Archive and calls domain
functions with it; none of them opens databases or stores on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from trialpacs.index.db import Database
from trialpacs.index.migrate import upgrade
from trialpacs.settings import Settings
from trialpacs.storage import BlobStore, open_store


@dataclass
class Archive:
    settings: Settings
    db: Database
    store: BlobStore

    @classmethod
    def open(cls, settings: Settings, migrate: bool = True) -> Archive:
        db = Database(settings.resolved_database_url())
        db.key_dir = settings.data_dir
        if migrate:
            upgrade(db.engine)
        return cls(settings=settings, db=db, store=open_store(settings))

    def close(self) -> None:
        self.db.dispose()
