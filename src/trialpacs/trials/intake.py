"""Store identified data for a trial and site (STOW-RS and import call this)."""

from __future__ import annotations

from collections.abc import Sequence

from trialpacs.archive import Archive
from trialpacs.errors import TrialpacsError
from trialpacs.ingest.store import Placement, StoreOutcome, store_many
from trialpacs.trials.routing import placement, route_trial_site


def site_placement(archive: Archive, trial_id: str, site_id: str) -> Placement:
    """The quarantine placement of a trial and site; NotFound or ResidencyViolation."""
    return placement(archive, route_trial_site(archive, trial_id, site_id))


def store_for_site(
    archive: Archive,
    datas: Sequence[bytes],
    trial_id: str,
    site_id: str,
    *,
    expected_study: str | None = None,
) -> list[StoreOutcome | TrialpacsError]:
    where = site_placement(archive, trial_id, site_id)
    return store_many(archive, datas, expected_study=expected_study, placement=where)
