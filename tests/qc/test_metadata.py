"""Metadata layer: words to SNOMED codes in several languages, geometry, consistent/conflicting."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from trialpacs.qc import anatomy, descriptors, geometry

KNEE, SHOULDER = "72696002", "16982005"


@pytest.mark.parametrize(
    ("text", "code", "side"),
    [
        ("GENOU DROIT", KNEE, "R"),
        ("Knie links", KNEE, "L"),
        ("RM rodilla izquierda", KNEE, "L"),
        ("e+1 KNEE-RT.", KNEE, "R"),
        ("Épaule gauche", SHOULDER, "L"),
        ("MRT Schulter rechts", SHOULDER, "R"),
        ("hombro", SHOULDER, ""),
        ("SHLDR", SHOULDER, ""),
        ("Schädel nativ", "69536005", ""),
        ("L-SPINE", "122496007", ""),
        ("PELVIS W/O CONT", "816092008", ""),
        ("Whole Body Bone", "38266002", ""),
    ],
)
def test_words_in_several_languages_become_snomed_codes(text: str, code: str, side: str) -> None:
    (first, *_) = anatomy.find(text)
    assert (first.region.code, first.laterality) == (code, side)


def test_cid_4031_is_the_vocabulary_and_words_without_anatomy_find_nothing() -> None:
    assert anatomy.regions()["Knee"].meaning == "Knee"
    assert len(anatomy.regions()) > 100
    assert anatomy.find("T1W/SE/1024") == []
    assert anatomy.find("FSE PD AXIAL OBL") == []


def test_containment_decides_compatibility() -> None:
    shoulder, knee = anatomy.expected("SHOULDER"), anatomy.expected("GENOU")
    assert anatomy.relation(knee, shoulder) == "disjoint"
    assert anatomy.relation(anatomy.expected("Extremity"), shoulder) == "coarser"
    assert anatomy.relation(anatomy.expected("BRAIN"), anatomy.expected("HEAD")) == "within"
    assert anatomy.expected("16982005") == shoulder


def test_unknown_expected_anatomy_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown anatomy 'ELBOWPIT'"):
        anatomy.expected("ELBOWPIT")


def _header(**kw: object) -> Dataset:
    ds = Dataset()
    ds.Modality = "MR"
    for k, v in kw.items():
        setattr(ds, k, v)
    return ds


def test_plane_field_of_view_coverage_and_laterality() -> None:
    headers = [
        _header(ImageOrientationPatient=[1, 0, 0, 0, 0, -1], PixelSpacing=[0.8, 0.8],
                Rows=512, Columns=512, ImagePositionPatient=[0, z * 4.0, 0], Laterality="R")
        for z in range(5)
    ]  # fmt: skip
    g = geometry.read(headers)
    assert (g.plane, g.oblique, g.laterality, g.slices) == ("COR", False, "R", 5)
    assert g.fov_mm == pytest.approx(409.6) and g.coverage_mm == pytest.approx(16.0)
    assert "field of view 410 mm" in geometry.fov_conflict(g, anatomy.expected("SHOULDER"))
    assert geometry.fov_conflict(g, anatomy.expected("ABDOMEN")) == ""
    assert geometry.plane_of([0.57, 0.82, 0, 0, 0, -1]) == ("SAG", True)


def test_real_knee_header_conflicts_with_an_expected_shoulder(testdata: Path) -> None:
    ds = pydicom.dcmread(testdata / "mr-knee" / "MR3_UNC.dcm", stop_before_pixels=True)
    ev = descriptors.read_evidence(ds)
    assert ev.laterality == "R"  # "KNEE-RT" in the study description
    verdict = descriptors.assess(ev, geometry.read([ds]), ["SHOULDER"])
    assert verdict.status == "conflicting"
    assert "StudyDescription names Knee (SCT 72696002) (expected Shoulder)" in verdict.reasons
    assert descriptors.assess(ev, geometry.read([ds]), ["KNEE"]).status == "consistent"
    left = descriptors.assess(ev, None, ["LEFT KNEE"])
    assert left.status == "conflicting" and "laterality R (expected L)" in left.reasons


def test_unknown_when_headers_say_nothing_and_modality_checked() -> None:
    empty = descriptors.read_evidence(_header())
    assert descriptors.assess(empty, None, ["SHOULDER"]).status == "unknown"
    ev = descriptors.read_evidence(_header(BodyPartExamined="SHOULDER"))
    ct = descriptors.assess(ev, None, ["SHOULDER"], modality="CT", expected_modalities=["MR"])
    assert "modality CT (expected MR)" in ct.reasons
    coded = _header()
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = KNEE, "SCT", "Knee"
    coded.AnatomicRegionSequence = [item]
    found = descriptors.read_evidence(coded).findings
    assert [(f.source, f.region.code) for f in found] == [("AnatomicRegionSequence", KNEE)]
