"""De-identify a labelled item through the DICOM wrapper and read back what a reviewer gets."""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pikepdf
from labelled_records import Item
from pydicom import dcmread

from trialpacs.deid import TrialContext, load_profile
from trialpacs.dicom.parse import parse_part10, write_part10
from trialpacs.records import fhir, ocr, pdf, video
from trialpacs.records.deidentify import RecordDeidentifier
from trialpacs.records.export import original_format
from trialpacs.records.intake import Intake, wrap_record


def deidentifier(
    trial: str = "ONCO1", site: str = "S01", *, ner: bool = False
) -> RecordDeidentifier:
    return RecordDeidentifier(
        load_profile("trial"), b"records-test-secret", TrialContext(trial, site), use_ner=ner
    )


@dataclass
class Outcome:
    item: Item
    subject: str
    text: str  # everything legible in the output (text layer, OCR, message)
    data: bytes  # original format, de-identified
    dicom: bytes
    frames: int = 0
    seconds: float = 0.0

    def left(self) -> list[str]:
        """PHI strings still legible, whole or in part (any significant word of them)."""
        text = _norm(self.text)
        words = set(re.findall(r"[a-z0-9]+", text))
        return [s for s in self.item.phi if _norm(s) in text or _tokens(s) & words]

    def word_counts(self) -> tuple[int, int, int, int]:
        """(PHI words, PHI words removed, other words, other words removed) of the report text.

        Words are compared as a multiset, so a clinical word counts as removed
        only when the output holds fewer of it than the input did.
        """
        if not self.item.source_text:
            return 0, 0, 0, 0
        phi_words: Counter[str] = Counter()
        for s in self.item.phi:
            phi_words.update(re.findall(r"[a-z0-9]+", s.lower()))
        source = Counter(re.findall(r"[a-z0-9]+", self.item.source_text.lower()))
        output = Counter(re.findall(r"[a-z0-9]+", self.text.lower()))
        phi_n = phi_removed = other_n = other_removed = 0
        for word, count in source.items():
            as_phi = min(count, phi_words[word])
            other = count - as_phi
            missing = max(0, count - output[word])
            phi_n += as_phi
            other_n += other
            # missing occurrences are PHI first: only what is left over was clinical text
            phi_removed += min(missing, as_phi)
            other_removed += max(0, missing - as_phi)
        return phi_n, phi_removed, other_n, other_removed

    def kept(self) -> list[str]:
        return [s for s in self.item.keep if _norm(s) in _norm(self.text)]


# Words that say nothing about a person on their own.
_GENERIC = frozenset({"street", "avenue", "road", "lane", "drive", "example", "org", "md", "dr"})


def _tokens(phi: str) -> set[str]:
    """Significant words of a PHI string: names, IDs; not years, house numbers, street types."""
    return {
        t
        for t in re.findall(r"[a-z0-9]+", phi.lower())
        if len(t) >= 3 and t not in _GENERIC and not (t.isdigit() and len(t) <= 4)
    }


def _norm(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip().lower()


def pdf_legible(data: bytes) -> str:
    """Text layer plus OCR of every image in the PDF."""
    parts = [pdf.extract_text(data)]
    doc = pikepdf.open(io.BytesIO(data))
    for page in doc.pages:
        for img in page.get_images().values():
            pil = pikepdf.PdfImage(img).as_pil_image()  # type: ignore[arg-type]
            arr = np.asarray(pil.convert("RGB"), dtype=np.uint8)
            parts += [t for _, t in ocr.read_lines(arr)]
        for op in pikepdf.parse_content_stream(page):  # inline images (BI … EI) too
            if isinstance(op, pikepdf.ContentStreamInlineImage):
                pil = op.iimage.as_pil_image()
                arr = np.asarray(pil.convert("RGB"), dtype=np.uint8)
                parts += [t for _, t in ocr.read_lines(arr)]
    return "\n".join(parts)


def video_legible(mp4: bytes, every: int = 1) -> tuple[str, int]:
    texts = []
    n = 0
    for i, frame in enumerate(video.frames(mp4)):
        n += 1
        if i % every == 0:
            texts += [t for _, t in ocr.read_lines(frame)]
    return "\n".join(texts), n


def validate_fhir_r4b(data: bytes | str) -> None:
    """Validates a FHIR JSON resource against the R4B (4.3) models of fhir.resources.

    fhir.resources 8 models R5 by default and ships R4B and STU3 but no R4
    (4.0.1) package; R4B is the closest validator available without a second,
    conflicting fhir.resources install. The resources we write (Bundle,
    Patient, DiagnosticReport, DocumentReference, Observation, Organization)
    have the same structure in R4 and R4B. Raises pydantic's ValidationError.
    """
    from fhir.resources.R4B import get_fhir_model_class

    raw = json.loads(data)
    get_fhir_model_class(raw["resourceType"]).model_validate(raw)


def run(item: Item, deid: RecordDeidentifier, *, ocr_every: int = 1) -> Outcome:
    import time

    if item.format == "fhir":
        validate_fhir_r4b(item.data)  # the labelled input is valid, so output errors are ours

    _, wrapped = wrap_record(item.data, item.name, Intake(patient=item.patient))
    parsed = parse_part10(wrapped)
    started = time.perf_counter()
    result = deid.deidentify(parsed.dataset, in_place=True)
    seconds = time.perf_counter() - started
    ts = str(result.dataset.file_meta.TransferSyntaxUID)
    out = write_part10(result.dataset, ts)
    original = original_format(dcmread(io.BytesIO(out)))
    frames = 0
    if item.format == "pdf":
        text = pdf_legible(original.data)
    elif item.format == "video":
        text, frames = video_legible(original.data, ocr_every)
    elif item.format == "fhir":
        validate_fhir_r4b(original.data)  # every de-identified bundle, in tests and the bench
        text = original.data.decode() + "\n" + fhir.report_text(fhir.load(original.data.decode()))
    else:
        text = original.data.decode()
    return Outcome(item, result.subject_id, text, original.data, out, frames, seconds)
