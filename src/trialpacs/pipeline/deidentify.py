"""Build the trial's Deidentifier (thin adapter over trialpacs.deid).

The secret is per trial (derived from the server secret), so the same patient
in two trials gets unrelated UIDs and dates; being deterministic, it makes a
re-run of a job produce byte-identical outputs, which is what makes jobs
idempotent. Pseudonyms come from the index (DbSubjectRegistry) so every
worker, thread or machine, hands out the same one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
from pathlib import Path

from sqlalchemy import select

from trialpacs.archive import Archive
from trialpacs.config.profiles import build_profile
from trialpacs.deid import Deidentifier, TrialContext
from trialpacs.deid.pixel_hook import pixel_cleaner_for
from trialpacs.records.deidentify import RecordDeidentifier
from trialpacs.trials.catalog import SiteInfo, TimePointInfo, TrialInfo
from trialpacs.trials.models import DeidProfileDef
from trialpacs.trials.subjects import DbSubjectRegistry

_CACHE: dict[tuple[int, str, str, str, str], Deidentifier] = {}
_LOCK = threading.Lock()


def server_secret(archive: Archive) -> bytes:
    s = archive.settings
    if s.deid_secret:
        return s.deid_secret.encode()
    path = Path(s.data_dir) / "deid.secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_hex(32).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
    return path.read_bytes().strip()


def _profiles(archive: Archive) -> dict[str, dict[str, object]]:
    with archive.db.read() as session:
        return {
            p.name: json.loads(p.definition or "{}")
            for p in session.scalars(select(DeidProfileDef))
        }


def deidentifier(
    archive: Archive, trial: TrialInfo, site: SiteInfo, timepoint: TimePointInfo | None = None
) -> Deidentifier:
    """The trial's engine for one site and visit (the visit is written as
    ClinicalTrialTimePointID, so published data can be searched by it)."""
    defined = _profiles(archive)
    fingerprint = hashlib.sha256(
        json.dumps([trial.profile, defined.get(trial.profile)], sort_keys=True).encode()
    ).hexdigest()
    tp_id = timepoint.timepoint_id if timepoint else ""
    key = (id(archive), trial.trial_id, site.site_id, tp_id, fingerprint)
    with _LOCK:
        cached = _CACHE.get(key)
        if cached is not None:
            return cached
    profile = build_profile(trial.profile, defined)
    secret = hmac.new(server_secret(archive), f"trial:{trial.trial_id}".encode(), "sha256")
    # Records (PDF, reports, videos) have their payload cleaned with the same keys.
    deid = RecordDeidentifier(
        profile,
        secret.digest(),
        TrialContext(
            trial_id=trial.trial_id,
            site_id=site.site_id,
            sponsor=trial.sponsor,
            protocol_name=trial.name,
            site_name=site.name,
            time_point_id=tp_id,
            time_point_description=timepoint.description if timepoint else "",
        ),
        registry=DbSubjectRegistry(archive.db, trial.trial_id),
        pixel_cleaner=pixel_cleaner_for(profile, max_frames=archive.settings.max_frames),
    )
    with _LOCK:
        _CACHE[key] = deid
    return deid
