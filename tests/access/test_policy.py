"""The policy module: roles, actions and objects, and its SQL form agreeing with it."""

from __future__ import annotations

import itertools

import pytest

from trialpacs.access.policy import (
    Grant,
    Principal,
    Resource,
    decide,
    parse_grant,
    visible_scopes,
)

TRIALS = ["T1", "T2", None]
SITES = ["S1", "S2", None]
COLLECTIONS = ["identified", "published"]


def who(*grants: str, scopes: frozenset[str] = frozenset({"*"})) -> Principal:
    return Principal("u", grants=tuple(parse_grant(g) for g in grants), scopes=scopes)


def img(trial: str | None, site: str | None, collection: str) -> Resource:
    return Resource(kind="image", trial=trial, site=site, collection=collection)  # type: ignore[arg-type]


def test_parse_grant_forms() -> None:
    assert parse_grant("administrator") == Grant("administrator")
    assert parse_grant("reader@T1") == Grant("reader", "T1")
    assert parse_grant("site-coordinator@T1/S1") == Grant("site_coordinator", "T1", "S1")
    assert str(parse_grant("data_manager@T1")) == "data_manager@T1"
    assert parse_grant(str(Grant("site_coordinator", None, "S1"))) == Grant(
        "site_coordinator", None, "S1"
    )
    for bad in ("wizard", "reader@/S1", "site_coordinator@T1", "reader@T 1", "site_pacs"):
        with pytest.raises(ValueError):
            parse_grant(bad)


@pytest.mark.parametrize(
    ("grants", "action", "resource", "expected"),
    [
        (["reader@T1"], "read", img("T1", "S1", "published"), True),
        (["reader@T1"], "read", img("T2", "S1", "published"), False),
        (["reader@T1"], "read", img("T1", "S1", "identified"), False),
        (["reader@T1"], "store", img("T1", "S1", "published"), False),
        (["site_coordinator@T1/S1"], "read", img("T1", "S1", "identified"), True),
        (["site_coordinator@T1/S1"], "read", img("T1", "S2", "identified"), False),
        (["site_coordinator@T1/S1"], "read", img("T2", "S1", "identified"), False),
        (["site_coordinator@T1/S1"], "store", img("T1", "S1", "identified"), True),
        (["site_coordinator@T1/S1"], "store", img("T1", "S1", "published"), False),
        (["site_pacs@T1/S1"], "store", img("T1", "S1", "identified"), True),
        (["site_pacs@T1/S1"], "read", img("T1", "S1", "identified"), False),
        (["data_manager@T1"], "read", img("T1", "S2", "published"), True),
        (["data_manager@T1"], "read", img("T1", "S2", "identified"), False),
        (["data_manager@T1"], "qc", img("T1", "S2", "published"), True),
        (["monitor@T1"], "read", img("T1", "S1", "published"), False),
        (["monitor@T1"], "audit", Resource(kind="audit", trial="T1"), True),
        (["monitor@T1"], "audit", Resource(kind="audit", trial="T2"), False),
        (["monitor@T1"], "manage", Resource(kind="admin", trial="T1"), False),
        (["administrator"], "read", img("T1", "S1", "published"), True),
        (["administrator"], "read", img("T1", "S1", "identified"), False),
        (["administrator"], "read", img(None, None, "published"), True),
        (["administrator@T1"], "read", img(None, None, "published"), False),
        (["administrator@T1"], "manage", Resource(kind="admin", trial="T1"), True),
        (["administrator@T1"], "manage", Resource(kind="admin"), False),
        ([], "read", img("T1", "S1", "published"), False),
    ],
)
def test_decisions(grants: list[str], action: str, resource: Resource, expected: bool) -> None:
    assert decide(who(*grants), action, resource) is expected  # type: ignore[arg-type]


def test_scopes_limit_a_credential() -> None:
    viewer_key = who("administrator", scopes=frozenset({"dicomweb"}))
    assert decide(viewer_key, "read", img("T1", "S1", "published"))
    assert not decide(viewer_key, "manage", Resource(kind="admin"))
    assert not decide(viewer_key, "workspace.read", Resource(kind="workspace", owner="u"))
    assert visible_scopes(who("reader@T1", scopes=frozenset({"audit"}))) == []


def test_workspace_owner_only_admin_may_delete_not_read() -> None:
    own = Resource(kind="workspace", owner="u")
    other = Resource(kind="workspace", owner="someone")
    alice = who("reader@T1")
    admin = who("administrator")
    for action in ("workspace.read", "workspace.write", "workspace.delete"):
        assert decide(alice, action, own)  # type: ignore[arg-type]
        assert not decide(alice, action, other)  # type: ignore[arg-type]
    assert decide(admin, "workspace.delete", other)
    assert not decide(admin, "workspace.read", other)
    assert not decide(admin, "workspace.write", other)
    assert not decide(who("administrator@T1"), "workspace.delete", other)
    anon = Principal("u", kind="anonymous", grants=(Grant("administrator"),))
    assert not decide(anon, "workspace.read", own)


GRANT_SETS = [
    [],
    ["reader@T1"],
    ["reader@T1", "reader@T2"],
    ["site_coordinator@T1/S1"],
    ["site_coordinator@T1/S1", "data_manager@T2"],
    ["site_pacs@T1/S1"],
    ["administrator"],
    ["administrator@T2", "reader@T1"],
    ["monitor"],
]


@pytest.mark.parametrize("grants", GRANT_SETS, ids=lambda g: "+".join(g) or "none")
@pytest.mark.parametrize("action", ["read", "store", "qc"])
def test_visible_scopes_equal_decide(grants: list[str], action: str) -> None:
    """The SQL filter is derived from visible_scopes; it must agree with decide everywhere."""
    p = who(*grants)
    scopes = visible_scopes(p, action)  # type: ignore[arg-type]
    for trial, site, coll in itertools.product(TRIALS, SITES, COLLECTIONS):
        in_scopes = any(
            (s.trial is None or s.trial == trial)
            and (s.site is None or s.site == site)
            and coll in s.collections
            for s in scopes
        )
        assert in_scopes == decide(p, action, img(trial, site, coll)), (trial, site, coll)  # type: ignore[arg-type]
