"""Where incoming data goes: which trial and site, which collection, which store.

Three intakes ask the same questions: STOW-RS to
``/dicomweb/trials/{trial}/sites/{site}/studies``, ``trialpacs import --trial
--site``, and C-STORE (by called AE title, and the calling AE's site). The
answer is a :class:`Route`; :func:`placement` turns it into an ingest
Placement after the residency check. Data that matches no trial is routed to
the ``unassigned`` collection: kept at the site, reported, never published.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from sqlalchemy import select

from trialpacs.archive import Archive
from trialpacs.errors import NotFound
from trialpacs.index.models import RemoteAE
from trialpacs.ingest.store import PUBLISHED, Placement
from trialpacs.trials import backends, catalog
from trialpacs.trials.events import record_event
from trialpacs.trials.models import PUBLISHED as PUBLISHED_COLLECTION
from trialpacs.trials.models import QUARANTINE, UNASSIGNED, Site, Trial, TrialSite


@dataclass(frozen=True)
class Route:
    collection: str  # published | quarantine | unassigned
    trial_id: str | None = None
    site_id: str | None = None
    reason: str = ""


ARCHIVE_ROUTE = Route(PUBLISHED_COLLECTION, reason="the archive's own AE title")


def route_trial_site(archive: Archive, trial_id: str, site_id: str) -> Route:
    """STOW and import name the trial and site; both must exist and be enrolled."""
    trial = catalog.get_trial(archive.db, trial_id)
    if trial is None or site_id not in trial.sites:
        # One message for all three cases: the URL reveals nothing about trials.
        raise NotFound(f"no site {site_id!r} enrolled in a trial {trial_id!r}")
    return Route(QUARANTINE, trial_id, site_id, "named in the request")


def route_dimse(archive: Archive, called_ae: str, calling_ae: str, peer_host: str) -> Route:
    """Route a C-STORE by the called AE title and the calling AE's site.

    A called AE of one trial and site takes data only from that site's AEs;
    a called AE of a trial takes data from any enrolled site (the calling AE
    or the peer's host tells which). The server's own AE title keeps the
    archive behaviour (published collection). Anything else is unassigned.
    """
    called = called_ae.strip()
    table = _routing_table(archive)
    calling_site = table.calling_sites.get(calling_ae.strip())
    if calling_site is None:
        calling_site = next(
            (
                site
                for site, hosts in table.site_hosts.items()
                if any(catalog.host_matches(h, peer_host) for h in hosts)
            ),
            None,
        )
    if called in table.by_trial_site:
        trial_id, site_id = table.by_trial_site[called]
        if calling_site in (None, site_id):
            return Route(QUARANTINE, trial_id, site_id, f"called AE {called}")
        return Route(
            UNASSIGNED,
            None,
            calling_site,
            f"called AE {called} belongs to site {site_id}, caller {calling_ae} to {calling_site}",
        )
    if called in table.by_trial:
        trial_id = table.by_trial[called]
        if calling_site is not None and calling_site in table.enrolled.get(trial_id, set()):
            return Route(QUARANTINE, trial_id, calling_site, f"called AE {called}")
        return Route(
            UNASSIGNED,
            None,
            calling_site,
            f"caller {calling_ae}@{peer_host} is not at a site enrolled in {trial_id}",
        )
    if called == archive.settings.ae_title.strip():
        return ARCHIVE_ROUTE
    return Route(UNASSIGNED, None, calling_site, f"called AE {called} matches no trial")


def placement(archive: Archive, route: Route) -> Placement:
    """The ingest placement of a route, with the site's backend (residency checked).

    Cached for a moment per route: a C-STORE per instance must not cost a
    residency check (and an unassigned-data event) per instance.
    """
    if route.collection == PUBLISHED_COLLECTION:
        return PUBLISHED
    key = (id(archive), route)
    now = time.monotonic()
    with _CACHE_LOCK:
        hit = _PLACEMENTS.get(key)
        if hit is not None and now - hit[0] < CACHE_SECONDS:
            return hit[1]
    result = _placement(archive, route)
    with _CACHE_LOCK:
        _PLACEMENTS[key] = (now, result)
    return result


def _placement(archive: Archive, route: Route) -> Placement:
    site = catalog.get_site(archive.db, route.site_id) if route.site_id else None
    if site is None:
        # Unassigned data from an unknown caller stays where it arrived.
        name = backends.QUARANTINE_BACKEND
        region = archive.settings.region
    else:
        name = site.identified_backend or backends.QUARANTINE_BACKEND
        region = site.region
    store = backends.identified_store(
        archive,
        name,
        site_id=route.site_id or "(unknown)",
        site_region=region,
        trial_id=route.trial_id or "",
    )
    if route.collection == UNASSIGNED:
        record_event(archive.db, "unassigned", site_id=route.site_id or "", detail=route.reason)
    return Placement(
        collection=route.collection,
        trial_id=route.trial_id,
        site_id=route.site_id,
        store_name=name,
        blob_store=store,
    )


def dimse_placement(archive: Archive, called_ae: str, calling_ae: str, peer_host: str) -> Placement:
    """What a C-STORE handler passes to ``store_parsed(..., placement=...)``."""
    return placement(archive, route_dimse(archive, called_ae, calling_ae, peer_host))


# -- a short-lived cache: one C-STORE per instance must not cost four queries ----


@dataclass
class _Table:
    at: float
    by_trial_site: dict[str, tuple[str, str]]
    by_trial: dict[str, str]
    enrolled: dict[str, set[str]]
    calling_sites: dict[str, str]
    site_hosts: dict[str, list[str]]


_CACHE: dict[int, _Table] = {}
_PLACEMENTS: dict[tuple[int, Route], tuple[float, Placement]] = {}
_CACHE_LOCK = threading.Lock()
CACHE_SECONDS = 2.0


def _routing_table(archive: Archive) -> _Table:
    now = time.monotonic()
    with _CACHE_LOCK:
        cached = _CACHE.get(id(archive))
        if cached is not None and now - cached.at < CACHE_SECONDS:
            return cached
    table = _Table(now, {}, {}, {}, {}, {})
    with archive.db.read() as session:
        for trial_id, trial_ae, site_id, site_ae in session.execute(
            select(Trial.trial_id, Trial.ae_title, Site.site_id, TrialSite.ae_title)
            .join(TrialSite, TrialSite.trial_pk == Trial.pk)
            .join(Site, Site.pk == TrialSite.site_pk)
        ).all():
            table.enrolled.setdefault(trial_id, set()).add(site_id)
            if trial_ae:
                table.by_trial[trial_ae] = trial_id
            if site_ae:
                table.by_trial_site[site_ae] = (trial_id, site_id)
        for trial_id, trial_ae in session.execute(select(Trial.trial_id, Trial.ae_title)).all():
            if trial_ae:
                table.by_trial[trial_ae] = trial_id
        for ae, site in session.execute(select(RemoteAE.ae_title, RemoteAE.site)).all():
            if site:
                table.calling_sites[ae.strip()] = site
        for s in catalog.all_sites(archive.db):
            table.site_hosts[s.site_id] = list(s.hosts)
    with _CACHE_LOCK:
        _CACHE[id(archive)] = table
    return table


def forget_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()
        _PLACEMENTS.clear()


__all__ = [
    "ARCHIVE_ROUTE",
    "Route",
    "dimse_placement",
    "forget_cache",
    "placement",
    "route_dimse",
    "route_trial_site",
]
