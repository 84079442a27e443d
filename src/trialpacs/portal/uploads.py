"""Where a caller may upload identified studies, and how those uploads are getting on.

A site coordinator sees the pipeline counters of their own sites only; the
full pipeline status (every trial, the attention list) stays with QC roles.
"""

from __future__ import annotations

from dataclasses import dataclass

from trialpacs.access.policy import Principal, Resource, decide
from trialpacs.archive import Archive
from trialpacs.pipeline.status import pipeline_status
from trialpacs.trials.catalog import all_trials


@dataclass(frozen=True)
class Target:
    trial: str
    site: str
    trial_name: str
    timepoints: tuple[str, ...] = ()


def targets(archive: Archive, principal: Principal) -> list[Target]:
    """The (trial, site) pairs the caller may send identified images to."""
    out: list[Target] = []
    for trial in all_trials(archive.db):
        for site in sorted(trial.sites):
            resource = Resource("image", trial.trial_id, site, "identified")
            if decide(principal, "store", resource):
                visits = tuple(t.timepoint_id for t in trial.timepoints)
                out.append(Target(trial.trial_id, site, trial.name, visits))
    return out


def site_status(archive: Archive, principal: Principal, trial: str, site: str) -> dict[str, int]:
    """The pipeline counters of one site the caller may upload to; empty when refused."""
    if not decide(principal, "store", Resource("image", trial, site, "identified")):
        return {}
    for row in pipeline_status(archive)["trials"]:
        if row["trial"] == trial and row["site"] == site:
            return {k: v for k, v in row.items() if isinstance(v, int)}
    return {}
