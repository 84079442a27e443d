"""Group commit: concurrent single-instance stores share fsyncs and one transaction.

DIMSE associations and STOW-RS clients that send one instance per request
each need the same durability as a batch. Funnelling them through one
committer thread lets N concurrent stores cost one database commit and one
fsync per directory instead of N of each; a lone store is picked up at once,
so sequential senders pay nothing extra.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future

from trialpacs.archive import Archive
from trialpacs.audit.chain import AuditEvent
from trialpacs.dicom.parse import ParsedInstance
from trialpacs.errors import TrialpacsError
from trialpacs.ingest.store import PUBLISHED, Placement, StoreOutcome, store_parsed_many

_Pending = tuple[ParsedInstance, Placement, "Future[StoreOutcome]", AuditEvent | None]


class GroupCommitter:
    def __init__(self, archive: Archive, max_batch: int = 64) -> None:
        self.archive = archive
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self._thread.start()

    def store(
        self,
        parsed: ParsedInstance,
        placement: Placement = PUBLISHED,
        audit: AuditEvent | None = None,
    ) -> StoreOutcome:
        """Store one instance; returns when it is durable and indexed, like store_parsed.

        ``audit`` (the caller's entry template) travels with the instance, so a
        batch of several associations still names each caller in the trail.
        """
        future: Future[StoreOutcome] = Future()
        self._queue.put((parsed, placement, future, audit))
        return future.result()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            groups: dict[Placement, list[_Pending]] = {}
            for pending in batch:
                groups.setdefault(pending[1], []).append(pending)
            for placement, group in groups.items():
                self._commit(placement, group)

    def _commit(self, placement: Placement, group: list[_Pending]) -> None:
        try:
            results = store_parsed_many(
                self.archive,
                {i: p for i, (p, _, _, _) in enumerate(group)},
                placement=placement,
                audit={i: a for i, (_, _, _, a) in enumerate(group)},
            )
        except BaseException as exc:  # a storage or database failure fails the whole group
            for _, _, future, _ in group:
                future.set_exception(exc)
            return
        for i, (_, _, future, _) in enumerate(group):
            result = results[i]
            if isinstance(result, TrialpacsError):
                future.set_exception(result)
            else:
                future.set_result(result)


_LOCK = threading.Lock()


def committer_for(archive: Archive) -> GroupCommitter:
    """The archive's committer, created on first use."""
    with _LOCK:
        existing = getattr(archive, "_committer", None)
        if existing is None:
            existing = GroupCommitter(archive)
            archive._committer = existing  # type: ignore[attr-defined]
        return existing
