"""Text decisions: the allow-list and PHI matching against the instance's own values."""

from __future__ import annotations

import pytest

from trialpacs.deid.pixels.ocr import TextRegion
from trialpacs.deid.pixels.policy import PhiMatcher, is_safe_annotation, make_policy


def _r(text: str | None, score: float = 0.99) -> TextRegion:
    return TextRegion(0, 0, 10, 10, 0.9, text, score)


@pytest.mark.parametrize(
    "text",
    [
        "R",
        "L",
        "AP",
        "5 cm",
        "10mm",
        "TR 500",
        "TE: 20 ms",
        "W 400 L 40",
        "120 kV",
        "MI 1.2",
        "TIS 0.4",
        "Gain 50%",
        "30 Hz",
        "1/4",
        "SAG",
        "2D",
        "x1.5",
        "W 2000 L 1980",
    ],
)
def test_safe_annotations(text: str) -> None:
    assert is_safe_annotation(text)


@pytest.mark.parametrize(
    "text",
    [
        "DOE^JANE",
        "John Smith",
        "MRN 12345678",
        "1970-01-01",
        "St Mary Hospital",
        "123 Main St",
        "Dr. House",
        "",
        # "Jan 15, 1962" with the month not read; a year alone.
        "15, 1962",
        "1962",
    ],
)
def test_not_safe(text: str) -> None:
    assert not is_safe_annotation(text)


def test_mask_all_text_masks_unread_and_low_confidence() -> None:
    policy = make_policy("mask-all-text")
    phi = PhiMatcher.from_terms([])
    assert policy.decide(_r(None), phi).mask
    assert policy.decide(_r("R", score=0.4), phi).mask
    assert not policy.decide(_r("R"), phi).mask
    assert policy.decide(_r("LIVER"), phi).mask


def test_mask_all_text_extra_allow_pattern() -> None:
    policy = make_policy("mask-all-text", allow_patterns=[r"LIVER( LONG)?"])
    assert not policy.decide(_r("liver long"), PhiMatcher.from_terms([])).mask


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("HARTWELL, JANE", "header-value"),
        ("HARTWEL", "header-value~"),
        ("Pt: H4RTWELL", "header-value~"),
        ("DOB 01/15/1962", "header-date"),
        ("15-Jan-1962", "header-date"),
        ("1962-01-15", "header-date"),
        ("ID QX-778812", "header-value"),
        ("St. Mary Hospital", "header-value"),
        ("MRN 99887766", "pattern-identifier"),
        ("12/03/2021", "pattern-date"),
        ("42 Elm Street", "pattern-address"),
        ("someone@example.org", "pattern-email"),
    ],
)
def test_phi_matching(text: str, reason: str) -> None:
    phi = PhiMatcher.from_terms(["HARTWELL^JANE^Q", "19620115", "QX-778812", "St. Mary Hospital"])
    assert phi.match(text) == reason


@pytest.mark.parametrize("text", ["LIVER", "TR 500", "AX T2 FLAIR", "R", "5 cm", "LONG"])
def test_clinical_text_is_not_phi(text: str) -> None:
    phi = PhiMatcher.from_terms(["HARTWELL^JANE^Q", "19620115", "QX-778812"])
    assert phi.match(text) is None


def test_mask_phi_policy() -> None:
    policy = make_policy("mask-phi")
    phi = PhiMatcher.from_terms(["DOE^JOHN"])
    assert policy.decide(_r("JOHN DOE"), phi).mask
    assert not policy.decide(_r("LIVER"), phi).mask
    assert policy.decide(_r("LIVER", score=0.2), phi).mask
    assert policy.decide(_r(None), phi).mask


def test_ner_hook_is_consulted() -> None:
    phi = PhiMatcher.from_terms([], ner=lambda t: "Springfield" in t)
    assert make_policy("mask-phi").decide(_r("Springfield General"), phi).mask


def test_unknown_policy() -> None:
    with pytest.raises(ValueError, match="unknown pixel policy"):
        make_policy("blur")
