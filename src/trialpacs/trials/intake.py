"""Store identified data for a trial and site (STOW-RS and import call this)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from trialpacs.archive import Archive
from trialpacs.errors import NotFound, TrialpacsError
from trialpacs.ingest.store import Placement, StoreOutcome, store_many
from trialpacs.trials import catalog
from trialpacs.trials.routing import placement, route_trial_site
from trialpacs.trials.timepoints import require_timepoint


def site_placement(
    archive: Archive, trial_id: str, site_id: str, timepoint: str | None = None
) -> Placement:
    """The quarantine placement of a trial and site, and of a visit if one is named.

    NotFound (trial/site), InvalidInput (a visit the trial does not declare) or
    ResidencyViolation.
    """
    where = placement(archive, route_trial_site(archive, trial_id, site_id))
    if timepoint is None:
        return where
    trial = catalog.get_trial(archive.db, trial_id)
    if trial is None:  # removed between the two reads
        raise NotFound(f"no site {site_id!r} enrolled in a trial {trial_id!r}")
    return dataclasses.replace(where, timepoint_id=require_timepoint(trial, timepoint))


def store_for_site(
    archive: Archive,
    datas: Sequence[bytes],
    trial_id: str,
    site_id: str,
    *,
    expected_study: str | None = None,
    timepoint: str | None = None,
) -> list[StoreOutcome | TrialpacsError]:
    where = site_placement(archive, trial_id, site_id, timepoint)
    return store_many(archive, datas, expected_study=expected_study, placement=where)
