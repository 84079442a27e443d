"""The policy's export action: who may export what (one place decides)."""

from __future__ import annotations

import itertools

import pytest

from exports.support import who
from trialpacs.access.policy import Resource, decide, visible_scopes
from trialpacs.exports.governance import ExportRefused, may_export_trial, require_sites


def img(trial: str | None, site: str | None, collection: str) -> Resource:
    return Resource(kind="image", trial=trial, site=site, collection=collection)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("grants", "trial", "collection", "expected"),
    [
        (["data_manager@T1"], "T1", "published", True),
        (["data_manager@T1"], "T2", "published", False),
        (["data_manager@T1"], "T1", "identified", False),
        (["administrator"], "T2", "published", True),
        (["administrator"], "T1", "identified", False),
        (["administrator@T1"], "T1", "published", True),
        (["reader@T1"], "T1", "published", False),
        (["monitor@T1"], "T1", "published", False),
        (["site_coordinator@T1/S1"], "T1", "published", False),
        (["site_coordinator@T1/S1"], "T1", "identified", False),
        (["site_pacs@T1/S1"], "T1", "identified", False),
        ([], "T1", "published", False),
    ],
)
def test_export_decisions(grants: list[str], trial: str, collection: str, expected: bool) -> None:
    assert decide(who(*grants), "export", img(trial, "S1", collection)) is expected


def test_no_role_may_export_identified_data() -> None:
    every_role = who("administrator", "data_manager@T1", "site_coordinator@T1/S1",
                     "site_pacs@T1/S1", "reader@T1", "monitor@T1")  # fmt: skip
    for trial, site in itertools.product(["T1", None], ["S1", None]):
        assert not decide(every_role, "export", img(trial, site, "identified"))


def test_a_credential_needs_the_export_scope() -> None:
    viewer_key = who("administrator")
    viewer_key = type(viewer_key)(
        viewer_key.subject, grants=viewer_key.grants, scopes=frozenset({"dicomweb"})
    )
    assert not decide(viewer_key, "export", img("T1", "S1", "published"))
    assert not may_export_trial(viewer_key, "T1")
    export_key = type(viewer_key)("k", grants=viewer_key.grants, scopes=frozenset({"export"}))
    assert may_export_trial(export_key, "T1")


@pytest.mark.parametrize(
    "grants",
    [[], ["data_manager@T1"], ["administrator"], ["administrator@T2", "reader@T1"], ["reader@T1"]],
)
def test_scopes_agree_with_decide(grants: list[str]) -> None:
    p = who(*grants)
    scopes = visible_scopes(p, "export")
    for trial, site, coll in itertools.product(
        ["T1", "T2"], ["S1", "S2"], ["published", "identified"]
    ):
        in_scopes = any(
            (s.trial is None or s.trial == trial)
            and (s.site is None or s.site == site)
            and coll in s.collections
            for s in scopes
        )
        assert in_scopes == decide(p, "export", img(trial, site, coll))


def test_site_bound_grants_reach_only_their_sites() -> None:
    admin_s1 = who("administrator@T1/S1")
    assert may_export_trial(admin_s1, "T1")
    require_sites(admin_s1, "T1", ["S1"])
    with pytest.raises(ExportRefused):
        require_sites(admin_s1, "T1", ["S1", "S2"])
