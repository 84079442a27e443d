"""Read the trial domain as plain values (routing, pipeline and status use these)."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from trialpacs.index.db import Database
from trialpacs.trials.models import Site, TimePoint, Trial, TrialSite


@dataclass(frozen=True)
class SiteInfo:
    site_id: str
    name: str
    region: str
    identified_backend: str | None
    hosts: tuple[str, ...] = ()


@dataclass(frozen=True)
class TimePointInfo:
    timepoint_id: str
    description: str
    modalities: tuple[str, ...]
    anatomy: tuple[str, ...]
    window_days: tuple[int, int] | None = None
    expected_series: tuple[str, ...] = ()  # sequence families (anatomy QC)


@dataclass(frozen=True)
class TrialInfo:
    trial_id: str
    name: str
    sponsor: str
    profile: str
    deid_regions: tuple[str, ...]
    ae_title: str | None
    sites: dict[str, str | None] = field(default_factory=dict)  # site -> its AE title
    timepoints: tuple[TimePointInfo, ...] = ()
    publish_to: tuple[str, ...] = ()
    reader_reports: str = "workspace"  # workspace | trial


def _site(row: Site) -> SiteInfo:
    return SiteInfo(
        row.site_id,
        row.name,
        row.region_id,
        row.identified_backend,
        tuple(json.loads(row.hosts or "[]")),
    )


def get_site(db: Database, site_id: str) -> SiteInfo | None:
    with db.read() as session:
        row = session.scalars(select(Site).where(Site.site_id == site_id)).first()
        return _site(row) if row else None


def all_sites(db: Database) -> list[SiteInfo]:
    with db.read() as session:
        return [_site(r) for r in session.scalars(select(Site).order_by(Site.site_id))]


def _trial(session: Session, row: Trial) -> TrialInfo:
    sites = {
        site_id: ae
        for site_id, ae in session.execute(
            select(Site.site_id, TrialSite.ae_title)
            .join(TrialSite, TrialSite.site_pk == Site.pk)
            .where(TrialSite.trial_pk == row.pk)
            .order_by(Site.site_id)
        ).all()
    }
    tps = tuple(
        TimePointInfo(
            t.timepoint_id,
            t.description,
            tuple(json.loads(t.modalities or "[]")),
            tuple(json.loads(t.anatomy or "[]")),
            (t.window_start_days, t.window_end_days)
            if t.window_start_days is not None and t.window_end_days is not None
            else None,
            tuple(json.loads(t.expected_series or "[]")),
        )
        for t in session.scalars(
            select(TimePoint).where(TimePoint.trial_pk == row.pk).order_by(TimePoint.position)
        )
    )
    return TrialInfo(
        trial_id=row.trial_id,
        name=row.name,
        sponsor=row.sponsor,
        profile=row.profile,
        deid_regions=tuple(json.loads(row.deid_regions or "[]")),
        ae_title=row.ae_title,
        sites=sites,
        timepoints=tps,
        publish_to=tuple(json.loads(row.publish_to or "[]")),
        reader_reports=row.reader_reports or "workspace",
    )


def get_trial(db: Database, trial_id: str) -> TrialInfo | None:
    with db.read() as session:
        row = session.scalars(select(Trial).where(Trial.trial_id == trial_id)).first()
        return _trial(session, row) if row else None


def all_trials(db: Database) -> list[TrialInfo]:
    with db.read() as session:
        return [_trial(session, r) for r in session.scalars(select(Trial).order_by(Trial.trial_id))]


def host_matches(pattern: str, address: str) -> bool:
    """A site host entry is an IP, a network (CIDR) or an exact host name."""
    try:
        net = ipaddress.ip_network(pattern, strict=False)
        return ipaddress.ip_address(address) in net
    except ValueError:
        return pattern.strip().lower() == address.strip().lower()
