"""Named storage backends bound to regions, and the residency rules on writes.

Two backends always exist: ``published`` (the archive's own store, which
DICOMweb and DIMSE serve) and ``quarantine`` (a local directory), both in the
server's region (``settings.region``). Configuration adds more. Every write of
identified data goes through :func:`identified_store`, which refuses a
backend outside the site's region; every copy of a trial's de-identified data
to a declared backend goes through :func:`deidentified_store`, which refuses
a backend outside the trial's ``deid_regions``. Both record the refusal (a
pipeline event and an audit entry): the rules are checked where the bytes
are written, not only when the configuration is applied.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from trialpacs.archive import Archive
from trialpacs.audit import AuditEvent, record
from trialpacs.errors import TrialpacsError
from trialpacs.storage import BlobStore
from trialpacs.storage.local import LocalStore
from trialpacs.storage.s3 import S3Store
from trialpacs.trials.events import record_event
from trialpacs.trials.models import StorageBackend

log = logging.getLogger(__name__)

PUBLISHED_BACKEND = "published"
QUARANTINE_BACKEND = "quarantine"
BUILTIN = (PUBLISHED_BACKEND, QUARANTINE_BACKEND)


class ResidencyViolation(TrialpacsError):
    """Identified data would leave its site's region."""


@dataclass(frozen=True)
class BackendSpec:
    name: str
    kind: str  # local | s3
    region: str
    purpose: str  # identified | deidentified
    options: dict[str, Any] = field(default_factory=dict)


def builtin_specs(archive: Archive) -> list[BackendSpec]:
    s = archive.settings
    return [
        BackendSpec(PUBLISHED_BACKEND, s.storage, s.region, "deidentified"),
        BackendSpec(
            QUARANTINE_BACKEND,
            "local",
            s.region,
            "identified",
            {"path": str(s.resolved_quarantine_dir())},
        ),
    ]


def load_specs(archive: Archive) -> dict[str, BackendSpec]:
    specs = {spec.name: spec for spec in builtin_specs(archive)}
    with archive.db.read() as session:
        for row in session.scalars(select(StorageBackend)):
            specs[row.name] = BackendSpec(
                row.name, row.kind, row.region_id, row.purpose, json.loads(row.options or "{}")
            )
    return specs


def open_backend(spec: BackendSpec) -> BlobStore:
    if spec.kind == "local":
        return LocalStore(Path(spec.options["path"]), name=spec.name)
    if spec.kind == "s3":
        o = spec.options
        store = S3Store(
            bucket=o["bucket"],
            prefix=o.get("prefix", ""),
            endpoint_url=o.get("endpoint_url"),
            region=o.get("s3_region"),
            name=spec.name,
        )
        store.ensure_bucket()
        return store
    raise TrialpacsError(f"storage backend {spec.name!r}: unknown kind {spec.kind!r}")


class BackendRegistry:
    """Opens each backend once per process; the published one is ``archive.store``."""

    def __init__(self, archive: Archive) -> None:
        self.archive = archive
        self._open: dict[str, BlobStore] = {}
        self._lock = threading.Lock()

    def spec(self, name: str) -> BackendSpec:
        spec = load_specs(self.archive).get(name)
        if spec is None:
            raise TrialpacsError(f"no storage backend named {name!r}")
        return spec

    def store(self, name: str | None) -> BlobStore:
        if name is None or name == PUBLISHED_BACKEND:
            return self.archive.store
        with self._lock:
            store = self._open.get(name)
            if store is None:
                store = open_backend(self.spec(name))
                self._open[name] = store
            return store


_REGISTRIES: dict[int, BackendRegistry] = {}
_REG_LOCK = threading.Lock()


def registry(archive: Archive) -> BackendRegistry:
    """The process-wide registry of an archive (backends hold connections)."""
    with _REG_LOCK:
        reg = _REGISTRIES.get(id(archive))
        if reg is None or reg.archive is not archive:
            reg = BackendRegistry(archive)
            _REGISTRIES[id(archive)] = reg
        return reg


def check_residency(
    archive: Archive, backend: BackendSpec, *, site_id: str, site_region: str, trial_id: str = ""
) -> None:
    """Refuse, and record, identified data going to a backend outside the site's region."""
    if backend.region == site_region and backend.purpose == "identified":
        return
    why = (
        f"backend {backend.name!r} is in region {backend.region!r}, site {site_id!r} is in "
        f"{site_region!r}"
        if backend.region != site_region
        else f"backend {backend.name!r} is for {backend.purpose} data"
    )
    _refused(archive, why, trial_id=trial_id, site_id=site_id, backend=backend.name)
    log.warning("identified write refused: %s", why)
    raise ResidencyViolation(f"identified data of site {site_id} may not be written there: {why}")


def _refused(archive: Archive, why: str, *, trial_id: str, site_id: str, backend: str) -> None:
    record_event(archive.db, "residency_refused", trial_id=trial_id, site_id=site_id, detail=why)
    record(
        archive.db,
        AuditEvent(
            action="residency.refused",
            outcome="failure",
            actor="system:residency",
            trial=trial_id,
            site=site_id,
            object=f"storage backend {backend}",
            reason=why,
        ),
    )


def deidentified_store(
    archive: Archive, backend_name: str, *, trial_id: str, allowed_regions: tuple[str, ...]
) -> tuple[BackendSpec, BlobStore]:
    """A backend a trial's de-identified data is copied to, after the trial's region rule."""
    reg = registry(archive)
    spec = reg.spec(backend_name)
    if spec.purpose == "deidentified" and spec.region in allowed_regions:
        return spec, reg.store(backend_name)
    why = (
        f"backend {spec.name!r} is for {spec.purpose} data"
        if spec.purpose != "deidentified"
        else f"backend {spec.name!r} is in region {spec.region!r}, trial {trial_id} allows "
        f"de-identified data only in {', '.join(allowed_regions) or 'no region'}"
    )
    _refused(archive, why, trial_id=trial_id, site_id="", backend=spec.name)
    log.warning("de-identified copy refused: %s", why)
    raise ResidencyViolation(f"de-identified data of trial {trial_id} may not go there: {why}")


def identified_store(
    archive: Archive,
    backend_name: str,
    *,
    site_id: str,
    site_region: str,
    trial_id: str = "",
) -> BlobStore:
    """The store for a site's identified data, after the residency check."""
    reg = registry(archive)
    check_residency(
        archive, reg.spec(backend_name), site_id=site_id, site_region=site_region, trial_id=trial_id
    )
    return reg.store(backend_name)
