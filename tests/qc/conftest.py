"""Fixtures: the real series of the test corpus as augmentation sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from trialpacs.qc.synthetic import Source, load_sources


@pytest.fixture(scope="session")
def sources(testdata: Path) -> dict[str, Source]:
    """Real series by anatomy (first of each; 'shoulder' and 'knee' are single MR images)."""
    out: dict[str, Source] = {}
    for s in load_sources(testdata):
        out.setdefault(s.anatomy, s)
    assert {"shoulder", "knee", "brain", "prostate"} <= set(out)
    return out
