"""Free-text PHI: span replacement, and the measured quality on the labelled set."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from trialpacs.deid.freetext import PhiDetector, Term, ner_available, terms_from_values

REPO = Path(__file__).resolve().parents[2]


def _eval_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "freetext_eval", REPO / "bench" / "freetext_eval.py"
    )
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["freetext_eval"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_only_the_phi_span_is_replaced() -> None:
    det = PhiDetector(terms_from_values([("NAME", "SMITH^JOHN")]))
    assert det.scrub("MRI RIGHT KNEE T1 for John Smith") == "MRI RIGHT KNEE T1 for [NAME]"


def test_header_values_in_many_spellings() -> None:
    det = PhiDetector(terms_from_values([("DATE", "19700304"), ("ID", "MRN-4471")]))
    for text in ("born 04/03/1970", "dob 1970-03-04", "seen 4 Mar 1970", "id MRN4471"):
        assert det.find(text), text


def test_patterns_without_header() -> None:
    det = PhiDetector()
    assert det.scrub("call 555-123-4567 or jane@example.com") == "call [PHONE] or [EMAIL]"
    assert det.scrub("SSN 123-45-6789") == "SSN [SSN]"


@pytest.mark.parametrize(
    "text", ["AX T2 FLAIR", "SAG PD FS", "LOCALIZER", "LATERAL VIEW LEFT KNEE", "DWI b1000 ADC"]
)
def test_clinical_strings_are_left_alone(text: str) -> None:
    assert PhiDetector(use_ner=ner_available()).scrub(text) == text


def test_clinical_words_are_not_used_as_name_terms() -> None:
    terms = terms_from_values([("NAME", "KNEE^Q")])
    assert Term("KNEE", "NAME") not in terms


def test_labelled_set_quality_rules_only() -> None:
    ev = _eval_module()
    examples = ev.load(REPO / "tests" / "data" / "deid" / "freetext_labelled.jsonl")
    assert len(examples) >= 100
    r = ev.evaluate(examples, use_ner=False)
    assert r["span_precision"] >= 0.95
    assert r["span_recall"] >= 0.85
    assert r["clean_untouched"] == 1.0


@pytest.mark.skipif(not ner_available(), reason="spaCy model (extra 'nlp') not installed")
def test_labelled_set_quality_with_ner() -> None:
    ev = _eval_module()
    examples = ev.load(REPO / "tests" / "data" / "deid" / "freetext_labelled.jsonl")
    r = ev.evaluate(examples, use_ner=True)
    assert r["span_recall"] >= 0.95
    assert r["span_precision"] >= 0.95
    assert r["clean_untouched"] == 1.0
    det = PhiDetector(use_ner=True)
    assert det.scrub("Knee pain, seen with Peter Parker yesterday").count("[NAME]") == 1
