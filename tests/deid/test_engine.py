"""Behaviour of the engine a trial would notice: consistency, references, marks, pixels."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from deid_helpers import MR, SECRET, base_dataset, read, ref_item, sequence, to_part10
from pydicom.dataset import Dataset

from trialpacs.deid import (
    Deidentifier,
    DeidError,
    MaskedBox,
    PixelCleanError,
    PixelCleanReport,
    TrialContext,
    load_profile,
)
from trialpacs.deid.dates import shift_da
from trialpacs.deid.pseudonyms import MemoryRegistry

TRIAL = TrialContext(trial_id="TRIAL-7", site_id="S01", sponsor="Acme Pharma", time_point_id="BL")


def make(**kw: object) -> Deidentifier:
    return Deidentifier(load_profile("trial"), SECRET, TRIAL, use_ner=False, **kw)  # type: ignore[arg-type]


def test_same_input_same_output_across_runs_and_machines() -> None:
    data = to_part10(base_dataset())
    first = make().deidentify_bytes(data)
    second = make().deidentify_bytes(data)  # a new engine: no shared cache
    assert first == second


def test_different_secret_gives_different_uids() -> None:
    ds = base_dataset()
    a = make().deidentify(ds).dataset
    b = Deidentifier(load_profile("trial"), b"another-secret-xyz", TRIAL).deidentify(ds).dataset
    assert a.StudyInstanceUID != b.StudyInstanceUID


def test_uids_replaced_by_2_25_and_references_stay_intact() -> None:
    engine = make()
    first = base_dataset(sop="1.2.3.4.100.1")
    second = base_dataset(sop="1.2.3.4.100.2")
    second.SourceImageSequence = sequence(ref_item(MR, "1.2.3.4.100.1"))
    second.ReferencedImageSequence = sequence(ref_item(MR, "1.2.3.4.100.1"))
    out1 = engine.deidentify(first).dataset
    out2 = engine.deidentify(second).dataset
    for uid in (out1.SOPInstanceUID, out1.StudyInstanceUID, out1.FrameOfReferenceUID):
        assert uid.startswith("2.25.") and len(uid) <= 64
    assert out2.SourceImageSequence[0].ReferencedSOPInstanceUID == out1.SOPInstanceUID
    assert out2.ReferencedImageSequence[0].ReferencedSOPInstanceUID == out1.SOPInstanceUID
    assert out2.SourceImageSequence[0].ReferencedSOPClassUID == MR  # well-known: kept
    assert out1.SOPClassUID == MR
    assert out1.StudyInstanceUID == out2.StudyInstanceUID


def test_file_meta_follows_the_new_sop_instance_uid() -> None:
    out = read(make().deidentify_bytes(to_part10(base_dataset())))
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    assert out.SOPInstanceUID.startswith("2.25.")
    assert out.preamble == b"\x00" * 128


def test_subject_ids_consistent_across_files_and_studies_and_never_collide() -> None:
    engine = make()
    a1 = engine.deidentify(base_dataset(patient_id="P1", study="1.9.1")).dataset
    a2 = engine.deidentify(base_dataset(patient_id="P1", study="1.9.2", study_date="20240301"))
    b = engine.deidentify(base_dataset(patient_id="P2", study="1.9.3")).dataset
    assert a1.PatientID == a2.dataset.PatientID == a1.PatientName == "S01-0001"
    assert b.PatientID == "S01-0002"
    assert a1.ClinicalTrialSubjectID == "S01-0001"
    assert a1.StudyInstanceUID != a2.dataset.StudyInstanceUID


def test_date_shift_is_per_subject_and_keeps_intervals() -> None:
    engine = make()
    v1 = engine.deidentify(base_dataset(patient_id="P1", study="1.9.1", study_date="20240102"))
    v2 = engine.deidentify(base_dataset(patient_id="P1", study="1.9.2", study_date="20240301"))
    assert v1.date_shift_days == v2.date_shift_days
    assert v1.date_shift_days is not None
    lo, hi = load_profile("trial").date_shift_days
    assert lo <= v1.date_shift_days <= hi
    assert v1.dataset.StudyDate == shift_da("20240102", v1.date_shift_days)
    assert v2.dataset.StudyDate == shift_da("20240301", v1.date_shift_days)
    assert v1.dataset.StudyTime == "101500"  # whole-day shift: time of day unchanged
    other = engine.deidentify(base_dataset(patient_id="P2"))
    assert other.subject_id != v1.subject_id


def test_dates_inside_sequences_are_shifted() -> None:
    ds = base_dataset()
    item = Dataset()
    item.ObservationDateTime = "20240102101010"
    item.TextValue = "x"
    ds.ContentSequence = sequence(item)
    result = make().deidentify(ds)
    got = result.dataset.ContentSequence[0].ObservationDateTime
    assert got.startswith(shift_da("20240102", result.date_shift_days or 0) or "")


def test_trial_attributes_and_marks() -> None:
    out = make().deidentify(base_dataset()).dataset
    assert out.PatientIdentityRemoved == "YES"
    assert out.LongitudinalTemporalInformationModified == "MODIFIED"
    assert out.ClinicalTrialProtocolID == "TRIAL-7"
    assert out.ClinicalTrialSponsorName == "Acme Pharma"
    assert out.ClinicalTrialSiteID == "S01"
    assert out.ClinicalTrialTimePointID == "BL"
    codes = {item.CodeValue for item in out.DeidentificationMethodCodeSequence}
    # Basic, safe private, device, patient characteristics, modified dates, descriptors
    assert codes == {"113100", "113111", "113109", "113108", "113107", "113105"}
    assert all(i.CodingSchemeDesignator == "DCM" for i in out.DeidentificationMethodCodeSequence)
    assert "trial" in out.DeidentificationMethod[0]


def test_basic_profile_marks_dates_removed() -> None:
    engine = Deidentifier(load_profile("basic"), SECRET, TRIAL)
    out = engine.deidentify(base_dataset()).dataset
    assert out.LongitudinalTemporalInformationModified == "REMOVED"
    assert "StudyDate" in out and not out.StudyDate  # Z in the Basic Profile
    assert "StudyDescription" not in out  # X without Clean Descriptors
    assert "InstitutionName" not in out


def test_free_text_keeps_clinical_words() -> None:
    out = make().deidentify(base_dataset()).dataset
    assert out.StudyDescription.startswith("MRI RIGHT KNEE T1")
    assert "Hartwell" not in out.StudyDescription and "Jane" not in out.StudyDescription
    assert out.SeriesDescription == "SAG PD FS"


def test_pixel_data_untouched_by_header_deidentification() -> None:
    ds = base_dataset()
    original = bytes(ds.PixelData)
    out = read(make().deidentify_bytes(to_part10(ds)))
    assert out.PixelData == original


def test_ages_over_89_become_90() -> None:
    ds = base_dataset()
    ds.PatientAge = "093Y"
    out = make().deidentify(ds).dataset
    assert out.PatientAge == "090Y"
    assert not out.get("PatientBirthDate")
    ds = base_dataset()
    ds.PatientBirthDate = "19200101"
    del ds.PatientAge
    ds.StudyDate = "20240102"
    out = Deidentifier(load_profile("trial"), SECRET, TRIAL).deidentify(ds).dataset
    assert not out.get("PatientBirthDate")


def test_private_tags_removed_unless_safe() -> None:
    ds = base_dataset()
    ds.add_new(0x00190010, "LO", "SIEMENS MR HEADER")
    ds.add_new(0x0019100C, "IS", "1000")  # B_value: on the safe list
    ds.add_new(0x00191099, "LO", "HARTWELL JANE")  # unknown: removed
    ds.add_new(0x00290010, "LO", "UNKNOWN VENDOR")
    ds.add_new(0x00291001, "LO", "anything")
    ds.add_new(0x00331001, "LO", "no creator at all")
    out = make().deidentify(ds).dataset
    assert out[0x0019100C].value == "1000"
    assert 0x00190010 in out
    assert 0x00191099 not in out
    assert 0x00290010 not in out and 0x00291001 not in out
    assert 0x00331001 not in out
    basic = Deidentifier(load_profile("basic"), SECRET, TRIAL).deidentify(ds).dataset
    assert not any(elem.tag.is_private for elem in basic)


def test_the_input_dataset_is_not_modified() -> None:
    ds = base_dataset()
    make().deidentify(ds)
    assert ds.PatientID == "MRN12345"


# ------------------------------------------------------------ pixel hook


class RecordingCleaner:
    def __init__(self, modify: bool = False, fail: bool = False) -> None:
        self.terms: list[str] = []
        self.modify = modify
        self.fail = fail

    def clean(self, ds: Dataset, phi_terms: Sequence[str]) -> PixelCleanReport:
        self.terms = list(phi_terms)
        if self.fail:
            raise PixelCleanError("OCR engine crashed")
        boxes = [MaskedBox(0, 0, 0, 1, 1, None, "matched PatientName")] if self.modify else []
        return PixelCleanReport(scanned=True, reason="ocr", boxes=boxes, modified=self.modify)


def test_pixel_cleaner_gets_the_original_identifying_values() -> None:
    cleaner = RecordingCleaner(modify=True)
    out = make(pixel_cleaner=cleaner).deidentify(base_dataset()).dataset
    assert "HARTWELL" in cleaner.terms and "MRN12345" in cleaner.terms
    assert "20240102" in cleaner.terms and "St. Mary Hospital" in cleaner.terms
    assert out.BurnedInAnnotation == "NO"
    assert "113101" in {i.CodeValue for i in out.DeidentificationMethodCodeSequence}


def test_pixel_cleaner_failure_fails_the_instance() -> None:
    engine = make(pixel_cleaner=RecordingCleaner(fail=True))
    with pytest.raises(PixelCleanError):
        engine.deidentify_bytes(to_part10(base_dataset()))


def test_without_a_cleaner_the_report_says_so() -> None:
    result = make().deidentify(base_dataset())
    assert result.pixel is not None and not result.pixel.scanned
    assert result.pixel.reason == "no pixel cleaner configured"
    codes = {i.CodeValue for i in result.dataset.DeidentificationMethodCodeSequence}
    assert "113101" not in codes


def test_shared_registry_numbers_subjects_across_engines() -> None:
    registry = MemoryRegistry()
    e1 = make(registry=registry)
    e2 = make(registry=registry)
    assert e1.deidentify(base_dataset(patient_id="A")).subject_id == "S01-0001"
    assert e2.deidentify(base_dataset(patient_id="B")).subject_id == "S01-0002"
    assert e2.deidentify(base_dataset(patient_id="A")).subject_id == "S01-0001"


def test_real_corpus_instances_deidentify(testdata_files: list) -> None:  # type: ignore[type-arg]
    engine = make()
    for path in testdata_files[:12]:
        out = read(engine.deidentify_bytes(path.read_bytes()))
        assert out.PatientIdentityRemoved == "YES"
        assert out.SOPInstanceUID.startswith("2.25.")


def test_deid_error_is_invalid_input() -> None:
    from trialpacs.errors import InvalidInput

    assert issubclass(DeidError, InvalidInput)
