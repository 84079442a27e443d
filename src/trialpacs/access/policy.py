"""The one place that decides who may do what.

Every adapter (DICOMweb, WADO-URI, DIMSE, portal, admin, workspace, CLI)
asks :func:`decide` with plain values, or asks :func:`visible_scopes` for the
set of (trial, site, collection) scopes a caller may read so the query layer
can filter in SQL. Nothing else in the code base interprets roles; a new rule
is added here, with a test, or nowhere.

Deny by default: an action is allowed only when one of the caller's grants
names a role whose rule allows it *and* the grant's scope covers the object.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

Role = Literal[
    "administrator", "site_coordinator", "site_pacs", "data_manager", "reader", "monitor"
]
ROLES: tuple[Role, ...] = (
    "administrator",
    "site_coordinator",
    "site_pacs",
    "data_manager",
    "reader",
    "monitor",
)
# Roles whose grants only make sense for one site: a coordinator or a site's PACS
# without a site would otherwise reach every site of the trial.
SITE_BOUND: frozenset[str] = frozenset({"site_coordinator", "site_pacs"})

Action = Literal[
    "read",  # QIDO/WADO/C-FIND/C-MOVE/C-GET of images
    "store",  # STOW, C-STORE, uploads
    "delete",  # removing images
    "qc",  # the QC queue
    "audit",  # reading the audit trail
    "manage",  # users, roles, trials (admin routes)
    "metrics",  # scraping /metrics (operations figures, no PHI)
    "export",  # research exports of de-identified data (trialpacs.exports)
    "workspace.read",
    "workspace.write",
    "workspace.delete",
]
Collection = Literal["identified", "published"]
COLLECTIONS: tuple[Collection, ...] = ("identified", "published")

# Token scopes: what a credential may be used for, independent of the roles of
# the account behind it (a service key for a viewer needs no admin routes).
SCOPES: frozenset[str] = frozenset({"dicomweb", "workspace", "admin", "audit", "export", "metrics"})
ALL_SCOPES = frozenset({"*"})
ACTION_SCOPE: dict[str, str] = {
    "read": "dicomweb",
    "store": "dicomweb",
    "delete": "admin",
    "qc": "admin",
    "audit": "audit",
    "manage": "admin",
    "metrics": "metrics",
    "export": "export",
    "workspace.read": "workspace",
    "workspace.write": "workspace",
    "workspace.delete": "workspace",
}

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True, slots=True)
class Grant:
    """A role in a scope; ``None`` trial or site means every one."""

    role: Role
    trial: str | None = None
    site: str | None = None

    def covers(self, trial: str | None, site: str | None) -> bool:
        if self.trial is not None and self.trial != trial:
            return False
        return self.site is None or self.site == site

    def __str__(self) -> str:
        if self.trial is None:
            return self.role if self.site is None else f"{self.role}@*/{self.site}"
        if self.site is None:
            return f"{self.role}@{self.trial}"
        return f"{self.role}@{self.trial}/{self.site}"


def parse_grant(text: str) -> Grant:
    """``role``, ``role@TRIAL``, ``role@TRIAL/SITE`` or ``role@*/SITE`` (a site in every trial)."""
    role, _, scope = text.strip().partition("@")
    role = role.strip().lower().replace("-", "_")
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    trial, _, site = scope.partition("/")
    trial_v = None if trial in ("", "*") else trial
    site_v = None if site in ("", "*") else site
    for value, what in ((trial_v, "trial"), (site_v, "site")):
        if value is not None and not _NAME_RE.match(value):
            raise ValueError(f"{what} {value!r} must be 1-64 letters, digits, '.', '_' or '-'")
    if site_v is not None and trial == "":
        raise ValueError("a site is always inside a trial: use role@TRIAL/SITE or role@*/SITE")
    if role in SITE_BOUND and site_v is None:
        raise ValueError(f"{role} is bound to one site: use {role}@TRIAL/SITE")
    return Grant(role, trial_v, site_v)


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: who, which grants, what the credential may be used for."""

    subject: str
    kind: Literal["user", "service", "anonymous"] = "user"
    grants: tuple[Grant, ...] = ()
    scopes: frozenset[str] = ALL_SCOPES
    session_id: str | None = None
    display_name: str = ""

    @property
    def name(self) -> str:
        return self.subject

    def has_scope(self, scope: str) -> bool:
        return "*" in self.scopes or scope in self.scopes

    def is_global_admin(self) -> bool:
        return any(g.role == "administrator" and g.trial is None for g in self.grants)


@dataclass(frozen=True, slots=True)
class Resource:
    """What is acted on. Images carry trial/site/collection; workspaces an owner.

    ``collection`` None is an archive object stored before trials existed: it is
    treated as published (de-identified), and with no trial only global grants
    reach it.
    """

    kind: Literal["image", "workspace", "audit", "admin"] = "image"
    trial: str | None = None
    site: str | None = None
    collection: Collection | None = None
    owner: str | None = None


# What each role may do to images, by collection. Site-bound roles are
# additionally limited to their site by the grant's scope.
_IMAGE_RULES: dict[str, dict[str, frozenset[str]]] = {
    "administrator": {
        "read": frozenset({"published"}),
        "store": frozenset(COLLECTIONS),
        "delete": frozenset(COLLECTIONS),
        "qc": frozenset(COLLECTIONS),
        "export": frozenset({"published"}),
    },
    "site_coordinator": {
        "read": frozenset(COLLECTIONS),
        "store": frozenset({"identified"}),
    },
    "site_pacs": {"store": frozenset({"identified"})},
    # Exports only ever leave with de-identified data: no role exports identified data.
    "data_manager": {
        "read": frozenset({"published"}),
        "qc": frozenset({"published"}),
        "export": frozenset({"published"}),
    },
    "reader": {"read": frozenset({"published"})},
    "monitor": {},
}
_OTHER_RULES: dict[str, frozenset[str]] = {
    "administrator": frozenset({"audit", "manage", "metrics"}),
    "monitor": frozenset({"audit"}),
}


def decide(principal: Principal, action: Action, resource: Resource) -> bool:
    """True when ``principal`` may do ``action`` to ``resource``."""
    if not principal.has_scope(ACTION_SCOPE[action]):
        return False
    if resource.kind == "workspace":
        return _workspace(principal, action, resource)
    if resource.kind == "image":
        collection = resource.collection or "published"
        for grant in principal.grants:
            allowed = _IMAGE_RULES[grant.role].get(action, frozenset())
            if collection in allowed and grant.covers(resource.trial, resource.site):
                return True
        return False
    for grant in principal.grants:
        if action in _OTHER_RULES.get(grant.role, frozenset()) and grant.covers(
            resource.trial, resource.site
        ):
            return True
    return False


def _workspace(principal: Principal, action: Action, resource: Resource) -> bool:
    """Only the owner reads or writes; a global administrator may delete, never read."""
    if principal.kind == "anonymous" or resource.owner is None:
        return False
    if resource.owner == principal.subject:
        return action in ("workspace.read", "workspace.write", "workspace.delete")
    return action == "workspace.delete" and principal.is_global_admin()


@dataclass(frozen=True, slots=True)
class Scope:
    """One visible slice of the archive: ``None`` trial/site means any."""

    trial: str | None
    site: str | None
    collections: frozenset[str] = field(default_factory=frozenset)


def visible_scopes(principal: Principal, action: Action = "read") -> list[Scope]:
    """The slices ``principal`` may ``action``, for filtering queries in SQL.

    The union of the returned scopes is exactly the set of image resources
    for which :func:`decide` returns True (tested property).
    """
    if not principal.has_scope(ACTION_SCOPE[action]):
        return []
    scopes: list[Scope] = []
    for grant in principal.grants:
        allowed = _IMAGE_RULES[grant.role].get(action, frozenset())
        if allowed:
            scopes.append(Scope(grant.trial, grant.site, allowed))
    return _merge(scopes)


def other_scopes(principal: Principal, action: Action) -> list[Scope]:
    """The trial/site slices in which ``principal`` may do a non-image ``action``
    (``audit``: which part of the trail a monitor reads); ``Scope(None, None)``
    is everything. Agrees with :func:`decide` on ``Resource(kind="audit")``."""
    if not principal.has_scope(ACTION_SCOPE[action]):
        return []
    scopes = [
        Scope(g.trial, g.site)
        for g in principal.grants
        if action in _OTHER_RULES.get(g.role, frozenset())
    ]
    return _merge(scopes)


def _merge(scopes: Iterable[Scope]) -> list[Scope]:
    merged: dict[tuple[str | None, str | None], set[str]] = {}
    for s in scopes:
        merged.setdefault((s.trial, s.site), set()).update(s.collections)
    return [Scope(t, s, frozenset(c)) for (t, s), c in sorted(merged.items(), key=str)]


def peer_principal(
    ae_title: str,
    site: str | None,
    grants: Iterable[Grant] = (),
    *,
    open_read: bool = False,
) -> Principal:
    """A DICOM peer as a caller: DIMSE carries no credentials, only a calling AE title.

    A known AE bound to a site is that site's PACS (``site_pacs@*/SITE``: it
    may store into its site's routes and read nothing back, as the role's rule
    says); anything it may read comes from explicit grants stored with the AE
    (``trialpacs ae add ... --grant reader@T1``). ``open_read`` is the demo
    mode's unknown AE: the whole published archive, never identified data.
    """
    own: set[Grant] = set(grants)
    if site:
        own.add(Grant("site_pacs", None, site))
    if open_read:
        own.add(Grant("reader"))
    return Principal(
        subject=f"ae:{ae_title}",
        kind="service",
        grants=tuple(sorted(own, key=str)),
        scopes=frozenset({"dicomweb"}),
    )
