"""Who may export: the policy's ``export`` action, asked per trial and per site.

The decision is the policy's (``trialpacs.access.policy``); this module only
asks it the right questions. A refusal looks like a missing cohort or trial
(``NotFound``), as everywhere else in trialpacs.
"""

from __future__ import annotations

from collections.abc import Iterable

from trialpacs.access.policy import Principal, Resource, decide, visible_scopes
from trialpacs.errors import NotFound


class ExportRefused(NotFound):
    """The caller may not export this (answered like a missing object)."""


def may_export_trial(principal: Principal, trial_id: str) -> bool:
    """True when some grant lets the caller export de-identified data of the trial."""
    return any(
        (scope.trial is None or scope.trial == trial_id) and "published" in scope.collections
        for scope in visible_scopes(principal, "export")
    )


def require_trial(principal: Principal, trial_id: str) -> None:
    if not may_export_trial(principal, trial_id):
        raise ExportRefused(f"no cohort or trial {trial_id!r} to export")


def require_sites(principal: Principal, trial_id: str, sites: Iterable[str]) -> None:
    """Every site the export reaches must be exportable by the caller."""
    for site in sorted(set(sites)):
        resource = Resource(kind="image", trial=trial_id, site=site, collection="published")
        if not decide(principal, "export", resource):
            raise ExportRefused(f"no cohort or trial {trial_id!r} to export")


def exportable_trials(principal: Principal, trials: Iterable[str]) -> list[str]:
    return [t for t in trials if may_export_trial(principal, t)]
