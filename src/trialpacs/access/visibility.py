"""The policy's answer as SQL: which studies a caller may see, for the query layer.

QIDO, WADO and retrieval add this condition to their own statement, so a
study the caller may not see is simply not found (404, never 403) and
limit/offset paging counts only visible rows.
"""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import ColumnElement, and_, false, or_

from trialpacs.access.policy import (
    Action,
    Collection,
    Grant,
    Principal,
    Resource,
    visible_scopes,
)
from trialpacs.index.models import Study

# The index's collection markers (trialpacs.trials) in the policy's terms.
DB_COLLECTIONS: dict[str, Collection] = {
    "published": "published",
    "quarantine": "identified",
    "unassigned": "identified",
}


def _db_values(collections: frozenset[str]) -> list[str]:
    return sorted(db for db, policy in DB_COLLECTIONS.items() if policy in collections)


def study_condition(principal: Principal, action: Action = "read") -> ColumnElement[bool] | None:
    """A WHERE condition on ``studies``; None means no restriction at all.

    Built once per distinct (grants, scopes): SQL expressions are immutable,
    and building one costs more than the rest of the policy check.
    """
    return _condition(principal.grants, principal.scopes, action)


@lru_cache(maxsize=4096)
def _condition(
    grants: tuple[Grant, ...], scopes: frozenset[str], action: Action
) -> ColumnElement[bool] | None:
    principal = Principal("", grants=grants, scopes=scopes)
    clauses: list[ColumnElement[bool]] = []
    for scope in visible_scopes(principal, action):
        conds: list[ColumnElement[bool]] = []
        if scope.trial is not None:
            conds.append(Study.trial_id == scope.trial)
        if scope.site is not None:
            conds.append(Study.site_id == scope.site)
        values = _db_values(scope.collections)
        if len(values) == 1:  # '=' lets SQLite keep the study_uid index
            conds.append(Study.collection == values[0])
        elif len(values) < len(DB_COLLECTIONS):
            conds.append(Study.collection.in_(values))
        if not conds:
            return None
        clauses.append(and_(*conds))
    if not clauses:
        return false()
    return or_(*clauses) if len(clauses) > 1 else clauses[0]


def resource_of(trial_id: str | None, site_id: str | None, collection: str | None) -> Resource:
    """The policy's view of one study row."""
    return Resource(
        kind="image",
        trial=trial_id,
        site=site_id,
        collection=DB_COLLECTIONS.get(collection or "published", "identified"),
    )
