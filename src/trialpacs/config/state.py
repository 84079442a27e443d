"""The configured state in the index: read it, compare it with a file, apply a file.

Apply upserts by natural key (trial ID, site ID, backend name...) so row
keys stay stable and running again changes nothing. Removing a trial or site
that already holds studies is refused: the file cannot orphan data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import yaml
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from trialpacs.archive import Archive
from trialpacs.config.loader import ConfigError, Problem, check_references
from trialpacs.config.schema import (
    AeCfg,
    BackendCfg,
    ConfigDoc,
    ProfileCfg,
    QcCfg,
    RegionCfg,
    RoleCfg,
    SiteCfg,
    TimePointCfg,
    TrialCfg,
    TrialSiteCfg,
)
from trialpacs.index.models import RemoteAE, Study
from trialpacs.trials.models import (
    DeidProfileDef,
    Region,
    RoleMapping,
    Site,
    StorageBackend,
    TimePoint,
    Trial,
    TrialSite,
)

SECTIONS = (
    ("regions", "id", "region"),
    ("storage_backends", "name", "storage backend"),
    ("profiles", "name", "profile"),
    ("sites", "id", "site"),
    ("trials", "id", "trial"),
    ("roles", "name", "role"),
)


@dataclass(frozen=True)
class Change:
    action: str  # create | update | delete
    kind: str
    name: str
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # key -> (old, new)

    def __str__(self) -> str:
        sign = {"create": "+", "update": "~", "delete": "-"}[self.action]
        head = f"{sign} {self.kind} {self.name}"
        lines = [head]
        for key, (old, new) in self.fields.items():
            if self.action == "update":
                lines.append(f"    {key}: {_short(old)} -> {_short(new)}")
        return "\n".join(lines)


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 120 else text[:117] + "..."


# ----------------------------------------------------------------- read


def _j(text: str | None) -> Any:
    return json.loads(text or "[]")


def current(archive: Archive) -> ConfigDoc:
    with archive.db.read() as session:
        return _read(session)


def _read(session: Session) -> ConfigDoc:
    regions = [
        RegionCfg(id=r.region_id, description=r.description)
        for r in session.scalars(select(Region))
    ]
    backends = [
        BackendCfg.model_validate(
            {
                "name": b.name,
                "kind": b.kind,
                "region": b.region_id,
                "purpose": b.purpose,
                **_j(b.options or "{}"),
            }
        )
        for b in session.scalars(select(StorageBackend))
    ]
    profiles = [
        ProfileCfg(name=p.name, **json.loads(p.definition or "{}"))
        for p in session.scalars(select(DeidProfileDef))
    ]
    aes: dict[str, list[AeCfg]] = {}
    for ae in session.scalars(select(RemoteAE).where(RemoteAE.site.is_not(None))):
        aes.setdefault(str(ae.site), []).append(
            AeCfg(ae_title=ae.ae_title, host=ae.host, port=ae.port)
        )
    sites = [
        SiteCfg(
            id=s.site_id,
            name=s.name,
            region=s.region_id,
            identified_backend=s.identified_backend,
            hosts=_j(s.hosts),
            aes=aes.get(s.site_id, []),
        )
        for s in session.scalars(select(Site))
    ]
    trials = []
    for t in session.scalars(select(Trial)):
        enrolled = session.execute(
            select(Site.site_id, TrialSite.ae_title)
            .join(TrialSite, TrialSite.site_pk == Site.pk)
            .where(TrialSite.trial_pk == t.pk)
        ).all()
        tps = session.scalars(
            select(TimePoint).where(TimePoint.trial_pk == t.pk).order_by(TimePoint.position)
        )
        trials.append(
            TrialCfg(
                id=t.trial_id,
                name=t.name,
                sponsor=t.sponsor,
                profile=t.profile,
                deid_regions=_j(t.deid_regions),
                publish_to=_j(t.publish_to),
                ae_title=t.ae_title,
                timepoints=[
                    TimePointCfg(
                        id=tp.timepoint_id,
                        description=tp.description,
                        modalities=_j(tp.modalities),
                        anatomy=_j(tp.anatomy),
                        expected_series=_j(tp.expected_series),
                        window_days=(tp.window_start_days, tp.window_end_days)
                        if tp.window_start_days is not None and tp.window_end_days is not None
                        else None,
                    )
                    for tp in tps
                ],
                sites=[TrialSiteCfg(site=sid, ae_title=ae) for sid, ae in enrolled],
                qc=QcCfg.model_validate(json.loads(t.qc or "{}")),
                reader_reports="trial" if t.reader_reports == "trial" else "workspace",
            )
        )
    roles = [
        RoleCfg(name=r.role, members=_j(r.members), trials=_j(r.trials), phi_sites=_j(r.phi_sites))
        for r in session.scalars(select(RoleMapping))
    ]
    return ConfigDoc(
        regions=regions,
        storage_backends=backends,
        profiles=profiles,
        sites=sites,
        trials=trials,
        roles=roles,
    ).normalized()


# ----------------------------------------------------------------- compare


def _entities(doc: ConfigDoc) -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    norm = doc.normalized()
    for section, key, kind in SECTIONS:
        for item in getattr(norm, section):
            out[(kind, str(getattr(item, key)))] = item.model_dump(mode="json")
    return out


def diff(old: ConfigDoc, new: ConfigDoc) -> list[Change]:
    before, after = _entities(old), _entities(new)
    order = {kind: i for i, (_, _, kind) in enumerate(SECTIONS)}
    changes = []
    for ident in sorted(set(before) | set(after), key=lambda k: (order[k[0]], k[1])):
        kind, name = ident
        if ident not in before:
            # Fields of creates and deletes feed the audit entry's new/old value.
            changes.append(
                Change("create", kind, name, {k: (None, v) for k, v in after[ident].items()})
            )
        elif ident not in after:
            changes.append(
                Change("delete", kind, name, {k: (v, None) for k, v in before[ident].items()})
            )
        elif before[ident] != after[ident]:
            keys = sorted(set(before[ident]) | set(after[ident]))
            fields = {
                k: (before[ident].get(k), after[ident].get(k))
                for k in keys
                if before[ident].get(k) != after[ident].get(k)
            }
            changes.append(Change("update", kind, name, fields))
    return changes


def plan(archive: Archive, desired: ConfigDoc) -> list[Change]:
    return diff(current(archive), desired)


# ----------------------------------------------------------------- apply


def apply(
    archive: Archive, desired: ConfigDoc, file: str = "<config>", actor: str = ""
) -> list[Change]:
    """Make the index match ``desired``; returns what changed (nothing the second time).

    Each change is audited (old and new values, the file as reason) in the
    same transaction, so no configuration change commits without its entry.
    """
    s = archive.settings
    problems = check_references(desired, server_region=s.region, server_ae=s.ae_title)
    if problems:
        raise ConfigError(problems)
    desired = desired.normalized()
    with archive.db.write() as session:
        changes = diff(_read(session), desired)
        if not changes:
            return []
        _refuse_orphans(session, desired, file)
        _apply_regions(session, desired)
        _apply_backends(session, desired)
        _apply_profiles(session, desired)
        _apply_sites(session, desired)
        _apply_trials(session, desired)
        _apply_roles(session, desired)
        _audit_changes(session, changes, file, actor)
    from trialpacs.trials.routing import forget_cache

    forget_cache()
    return changes


def _audit_changes(session: Session, changes: list[Change], file: str, actor: str) -> None:
    from trialpacs.audit.chain import AuditEvent, append

    for change in changes:
        old = {k: o for k, (o, _) in change.fields.items()}
        new = {k: n for k, (_, n) in change.fields.items()}
        append(
            session,
            AuditEvent(
                action=f"config.{change.action}",
                actor=actor,
                agent="trialpacs apply",
                trial=change.name if change.kind == "trial" else "",
                site=change.name if change.kind == "site" else "",
                object=f"{change.kind}:{change.name}",
                old_value=json.dumps(old, sort_keys=True, default=str)
                if old and change.action != "create"
                else "",
                new_value=json.dumps(new, sort_keys=True, default=str)
                if new and change.action != "delete"
                else "",
                reason=f"applied from {file}",
            ),
        )


def _refuse_orphans(session: Session, desired: ConfigDoc, file: str) -> None:
    keep_trials = {t.id for t in desired.trials}
    keep_sites = {s.id for s in desired.sites}
    problems = []
    for tid in session.scalars(select(Trial.trial_id)):
        if tid not in keep_trials and _has_studies(session, Study.trial_id == tid):
            problems.append(
                Problem(file, 1, f"trial {tid!r} holds studies and cannot be removed", "keep it")
            )
    for sid in session.scalars(select(Site.site_id)):
        if sid not in keep_sites and _has_studies(session, Study.site_id == sid):
            problems.append(
                Problem(file, 1, f"site {sid!r} holds studies and cannot be removed", "keep it")
            )
    if problems:
        raise ConfigError(problems)


def _has_studies(session: Session, cond: Any) -> bool:
    return bool(session.scalar(select(func.count()).select_from(Study).where(cond)))


def _sync(session: Session, model: Any, keycol: str, wanted: dict[str, dict[str, Any]]) -> None:
    """Upsert rows by natural key and delete the rest."""
    rows = {getattr(r, keycol): r for r in session.scalars(select(model))}
    for key, row in rows.items():
        if key not in wanted:
            session.delete(row)
    for key, values in wanted.items():
        row = rows.get(key)
        if row is None:
            row = model(**{keycol: key})
            session.add(row)
        for attr, value in values.items():
            if getattr(row, attr) != value:
                setattr(row, attr, value)
    session.flush()


def _apply_regions(session: Session, d: ConfigDoc) -> None:
    _sync(session, Region, "region_id", {r.id: {"description": r.description} for r in d.regions})


def _apply_backends(session: Session, d: ConfigDoc) -> None:
    _sync(
        session,
        StorageBackend,
        "name",
        {
            b.name: {
                "kind": b.kind,
                "region_id": b.region,
                "purpose": b.purpose,
                "options": json.dumps(b.options(), sort_keys=True),
            }
            for b in d.storage_backends
        },
    )


def _apply_profiles(session: Session, d: ConfigDoc) -> None:
    _sync(
        session,
        DeidProfileDef,
        "name",
        {p.name: {"definition": json.dumps(p.definition(), sort_keys=True)} for p in d.profiles},
    )


def _apply_sites(session: Session, d: ConfigDoc) -> None:
    _sync(
        session,
        Site,
        "site_id",
        {
            s.id: {
                "name": s.name,
                "region_id": s.region,
                "identified_backend": s.identified_backend,
                "hosts": json.dumps(s.hosts),
            }
            for s in d.sites
        },
    )
    wanted = {ae.ae_title: (s.id, ae) for s in d.sites for ae in s.aes}
    for old in session.scalars(select(RemoteAE)):
        if old.site is not None and old.ae_title not in wanted:
            session.delete(old)
    session.flush()
    existing = {r.ae_title: r for r in session.scalars(select(RemoteAE))}
    for title, (site_id, ae) in wanted.items():
        row = existing.get(title)
        if row is None:
            row = RemoteAE(ae_title=title, host=ae.host, port=ae.port, site=site_id)
            session.add(row)
        else:
            row.host, row.port, row.site = ae.host, ae.port, site_id
    session.flush()


def _apply_trials(session: Session, d: ConfigDoc) -> None:
    # AE titles are unique: clear the ones that move before setting new ones.
    for enrolled_row in session.scalars(select(TrialSite)):
        enrolled_row.ae_title = None
    for trial_row in session.scalars(select(Trial)):
        trial_row.ae_title = None
    session.flush()
    _sync(
        session,
        Trial,
        "trial_id",
        {
            t.id: {
                "name": t.name,
                "sponsor": t.sponsor,
                "profile": t.profile,
                "deid_regions": json.dumps(t.deid_regions),
                "publish_to": json.dumps(t.publish_to),
                "ae_title": t.ae_title,
                "qc": json.dumps(t.qc.chosen() if t.qc else {}, sort_keys=True),
                "reader_reports": t.reader_reports,
            }
            for t in d.trials
        },
    )
    trial_pk = {r[0]: r[1] for r in session.execute(select(Trial.trial_id, Trial.pk))}
    site_pk = {r[0]: r[1] for r in session.execute(select(Site.site_id, Site.pk))}
    for t in d.trials:
        tpk = trial_pk[t.id]
        rows = session.scalars(select(TrialSite).where(TrialSite.trial_pk == tpk))
        enrolled = {r.site_pk: r for r in rows}
        wanted = {site_pk[ts.site]: ts for ts in t.sites}
        for spk, old in enrolled.items():
            if spk not in wanted:
                session.delete(old)
        for spk, cfg in wanted.items():
            row = enrolled.get(spk)
            if row is None:
                session.add(TrialSite(trial_pk=tpk, site_pk=spk, ae_title=cfg.ae_title))
            else:
                row.ae_title = cfg.ae_title
        session.execute(delete(TimePoint).where(TimePoint.trial_pk == tpk))
        for pos, tp in enumerate(t.timepoints):
            session.add(
                TimePoint(
                    trial_pk=tpk,
                    timepoint_id=tp.id,
                    description=tp.description,
                    position=pos,
                    modalities=json.dumps(tp.modalities),
                    anatomy=json.dumps(tp.anatomy),
                    expected_series=json.dumps(tp.expected_series),
                    window_start_days=tp.window_days[0] if tp.window_days else None,
                    window_end_days=tp.window_days[1] if tp.window_days else None,
                )
            )
    session.flush()


def _apply_roles(session: Session, d: ConfigDoc) -> None:
    _sync(
        session,
        RoleMapping,
        "role",
        {
            r.name: {
                "members": json.dumps(r.members),
                "trials": json.dumps(r.trials),
                "phi_sites": json.dumps(r.phi_sites),
            }
            for r in d.roles
        },
    )


# ----------------------------------------------------------------- export


def export_yaml(archive: Archive) -> str:
    doc = current(archive)
    data = doc.model_dump(mode="json", exclude_defaults=True)
    data = {"version": 1, **data}
    header = "# trialpacs configuration (trialpacs export-config); apply with trialpacs apply\n"
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
