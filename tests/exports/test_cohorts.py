"""Cohort definitions and their semantics over the published archive."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from exports.support import DATA_MANAGER, World
from trialpacs.errors import InvalidInput
from trialpacs.exports.cohort import CohortDefinition
from trialpacs.exports.saved import get_cohort, list_cohorts, parse_ref, save_cohort
from trialpacs.exports.select import counts, resolve
from trialpacs.index.models import Study
from trialpacs.trials.models import PipelineSeries


def pick(world: World, **kw: object) -> list[tuple[str, str, str, str]]:
    found = resolve(world.archive, CohortDefinition.from_mapping({"trial": "T1", **kw}))
    return [(s.site_id, s.subject, s.timepoint, s.series_description) for s in found]


def test_whole_trial_in_fixed_order(world: World) -> None:
    assert pick(world) == [
        ("S1", "S1-0001", "BL", "T1 SAG"),
        ("S1", "S1-0001", "BL", "PD FS COR"),
        ("S1", "S1-0001", "W12", "T1 SAG"),
        ("S1", "S1-0002", "BL", "LUNG 1MM"),
        ("S1", "S1-0002", "W12", "LUNG 1MM"),
        ("S2", "S2-0001", "BL", "T1 SAG"),
        ("S2", "S2-0001", "W12", "T2 AX"),
    ]


def test_filters_and_within_or_across(world: World) -> None:
    assert [r[:2] for r in pick(world, sites=["S2"])] == [("S2", "S2-0001")] * 2
    assert pick(world, subjects=["S1-0002"], timepoints=["W12"]) == [
        ("S1", "S1-0002", "W12", "LUNG 1MM")
    ]
    assert {r[3] for r in pick(world, modalities=["mr"], timepoints=["BL"])} == {
        "T1 SAG",
        "PD FS COR",
    }
    assert {r[1] for r in pick(world, body_parts=["chest"])} == {"S1-0002"}
    assert {r[3] for r in pick(world, series_description="t1*")} == {"T1 SAG"}
    assert len(pick(world, series_description="*SAG")) == 3
    # every published series here was published directly: QC "not_checked"
    assert pick(world, qc_status=["passed"]) == []
    assert len(pick(world, qc_status=["not_checked"])) == 7


def test_days_from_baseline(world: World) -> None:
    found = resolve(world.archive, CohortDefinition("T1"))
    days = {(s.subject, s.timepoint): s.days_from_baseline for s in found}
    assert days[("S1-0001", "BL")] == 0
    assert days[("S1-0001", "W12")] == 84  # 2024-01-02 -> 2024-03-26
    assert days[("S2-0001", "W12")] == 86
    follow_up = pick(world, days_from_baseline_min=30)
    assert {r[2] for r in follow_up} == {"W12"} and len(follow_up) == 3
    # a filter never moves the baseline: CT-only still counts from the CT baseline
    ct = resolve(world.archive, CohortDefinition("T1", modalities=("CT",), timepoints=("W12",)))
    assert [s.days_from_baseline for s in ct] == [85]


def test_identified_data_is_never_selected(world: World) -> None:
    found = resolve(world.archive, CohortDefinition("T1"))
    assert world.identified_series not in {s.series_uid for s in found}
    assert all(s.instances == 2 or s.site_id == "S2" for s in found)


def test_counts_per_site_modality_timepoint(world: World) -> None:
    c = counts(resolve(world.archive, CohortDefinition("T1")))
    assert (c.series, c.instances, c.subjects, c.studies) == (7, 15, 3, 6)
    assert c.by_site == {"S1": 5, "S2": 2}
    assert c.by_modality == {"CT": 2, "MR": 5}
    assert c.by_timepoint == {"BL": 4, "W12": 3}


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({}, "names its trial"),
        ({"trial": "T 1"}, "not a trial ID"),
        ({"trial": "T1", "sites": ["S/1"]}, "site 'S/1'"),
        ({"trial": "T1", "modalities": ["M-R"]}, "modality"),
        ({"trial": "T1", "qc_status": ["great"]}, "QC status 'great'"),
        ({"trial": "T1", "days_from_baseline_min": 10, "days_from_baseline_max": 1}, "after"),
        ({"trial": "T1", "days_from_baseline_min": "soon"}, "whole number"),
        ({"trial": "T1", "colour": "red"}, "unknown cohort keys"),
        ({"trial": "T1", "sites": 3}, "list of values"),
    ],
)
def test_bad_definitions_are_refused_with_the_reason(
    mapping: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        CohortDefinition.from_mapping(mapping)


def test_canonical_form_ignores_order_and_case() -> None:
    a = CohortDefinition("T1", sites=("S2", "S1"), modalities=("mr", "CT"))
    b = CohortDefinition.from_mapping({"trial": "T1", "sites": "S1,S2", "modalities": ["CT", "MR"]})
    assert a == b and a.digest == b.digest
    assert CohortDefinition.from_mapping(a.to_mapping()) == a


def test_saved_cohorts_are_versioned(world: World) -> None:
    db = world.archive.db
    v1 = save_cohort(db, "knees", CohortDefinition("T1", body_parts=("KNEE",)), "dm")
    again = save_cohort(db, "knees", CohortDefinition("T1", body_parts=("knee",)), "dm")
    assert (v1.version, again.version) == (1, 1)
    v2 = save_cohort(db, "knees", CohortDefinition("T1", body_parts=("KNEE",), sites=("S1",)), "dm")
    assert v2.version == 2
    assert get_cohort(db, "knees").version == 2
    assert get_cohort(db, "knees", 1).definition.sites == ()
    assert [c.ref for c in list_cohorts(db)] == ["knees@2"]
    assert [c.ref for c in list_cohorts(db, all_versions=True)] == ["knees@1", "knees@2"]
    assert parse_ref("knees@1") == ("knees", 1)
    with pytest.raises(InvalidInput, match="never changes trial"):
        save_cohort(db, "knees", CohortDefinition("T2"), DATA_MANAGER.subject)
    with pytest.raises(InvalidInput, match="not 'history'"):
        save_cohort(db, "history", CohortDefinition("T1"), "dm")


def test_the_index_time_point_wins_over_the_header(world: World) -> None:
    """Once the pipeline records a study's visit (studies.timepoint_id), that is used."""
    found = resolve(world.archive, CohortDefinition("T1", subjects=("S2-0001",)))
    week12 = next(s for s in found if s.timepoint == "W12")
    with world.archive.db.write() as session:
        session.execute(
            update(Study).where(Study.study_uid == week12.study_uid).values(timepoint_id="W16")
        )
    assert pick(world, timepoints=["W16"]) == [("S2", "S2-0001", "W16", "T2 AX")]
    assert pick(world, subjects=["S2-0001"], timepoints=["W12"]) == []


def test_a_pipeline_published_series_has_its_visit_and_passed_qc(world: World) -> None:
    """The pipeline's row for a series (pipeline_series) gives QC 'passed', and its visit
    when the study has none in the index (the header's visit comes last)."""
    found = resolve(world.archive, CohortDefinition("T1", subjects=("S1-0002",)))
    target = found[0]
    with world.archive.db.write() as session:
        session.execute(
            update(Study).where(Study.study_uid == target.study_uid).values(timepoint_id="")
        )
        session.add(
            PipelineSeries(
                series_uid="1.2.3.999",
                study_uid="1.2.3.998",
                trial_id="T1",
                site_id="S1",
                state="published",
                subject="S1-0002",
                published_study_uid=target.study_uid,
                published_series_uid=target.series_uid,
                timepoint_id="SCREEN",
            )
        )
    assert pick(world, qc_status=["passed"]) == [("S1", "S1-0002", "SCREEN", "LUNG 1MM")]
    assert len(pick(world, qc_status=["not_checked"])) == 6
