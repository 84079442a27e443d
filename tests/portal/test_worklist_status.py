"""The worklist's pipeline-status filter pages in SQL over the whole quarantine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from trialpacs.access.policy import Principal, parse_grant
from trialpacs.archive import Archive
from trialpacs.index.models import Patient, Study
from trialpacs.portal import worklist
from trialpacs.settings import load_settings
from trialpacs.trials.models import QUARANTINE, PipelineSeries

# study label -> the states of its series ('' = no pipeline row yet: received)
STATES = {
    "attention": ("published", "needs_attention", "queued"),
    "held": ("held_qc", "processing"),
    "processing": ("processing", "queued", "published"),
    "queued": ("queued", "published"),
    "done": ("published", "published"),
    "received": (),
}
FILLER = 2100  # more received studies, newer than the ones above


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archive]:
    tmp: Path = tmp_path_factory.mktemp("worklist")
    archive = Archive.open(load_settings(None, data_dir=tmp))
    with archive.db.write() as session:
        patient = Patient(patient_id="P1")
        session.add(patient)
        session.flush()

        def study(uid: str, date: str) -> Study:
            return Study(
                study_uid=uid, patient_pk=patient.pk, patient_id="P1", study_date=date,
                collection=QUARANTINE, trial_id="T1", site_id="S1",
            )  # fmt: skip

        for label, states in STATES.items():
            session.add(study(label, "20200101"))
            for n, state in enumerate(states):
                session.add(
                    PipelineSeries(
                        series_uid=f"{label}.{n}",
                        study_uid=label,
                        trial_id="T1",
                        site_id="S1",
                        state=state,
                    )
                )
        session.add_all(study(f"new.{n}", "20240101") for n in range(FILLER))
    yield archive
    archive.close()


COORDINATOR = Principal("cora", grants=(parse_grant("site_coordinator@T1/S1"),))


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("needs_attention", {"attention"}),
        ("held_qc", {"held"}),
        ("processing", {"processing"}),
        ("queued", {"queued"}),
    ],
)
def test_status_filter_finds_studies_behind_thousands_of_newer_ones(
    archive: Archive, status: str, expected: set[str]
) -> None:
    """The shown status is the least advanced series state; old studies are still found."""
    page = worklist.search(archive.db, COORDINATOR, worklist.Filters(status=status))
    assert {r.study_uid for r in page.rows} == expected
    assert {r.status for r in page.rows} == {status}
    assert not page.more


def test_received_pages_in_sql(archive: Archive) -> None:
    """Received (no pipeline state that ranks) pages through every such study once."""
    seen: list[str] = []
    offset = 0
    while True:
        flt = worklist.Filters(status="received", limit=200, offset=offset)
        page = worklist.search(archive.db, COORDINATOR, flt)
        assert {r.status for r in page.rows} <= {"received"}
        seen += [r.study_uid for r in page.rows]
        if not page.more:
            break
        offset += 200
    assert len(seen) == len(set(seen)) == FILLER + 1
    assert "received" in seen and "done" not in seen
