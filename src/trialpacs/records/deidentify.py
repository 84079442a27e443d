"""De-identify a record's DICOM wrapper: header by the trial's engine, payload by its format.

The pipeline's series job and ``trialpacs deid`` call :func:`deidentify_instance`
for every instance; anything that is not a record goes straight to the engine.
For a record the payload is taken out first (the engine would remove SR
content and cannot read a PDF or a video), the header is de-identified
(pseudonym, date shift and UIDs exactly as for the subject's images), and
the payload is cleaned with the same pseudonym and shift and put back.
Every cleaned payload is checked for the record's identifying values before
it is accepted; a hit fails the instance (nothing is released).
"""

from __future__ import annotations

import copy
import hmac
import io
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from trialpacs.deid.engine import Deidentifier, DeidError, DeidResult, phi_values
from trialpacs.errors import InvalidInput
from trialpacs.records import dicomwrap as wrap
from trialpacs.records import fhir, hl7v2, ocr, pdf, video
from trialpacs.records.formats import RecordFormat, detect_format
from trialpacs.records.identity import PatientIdentity

if TYPE_CHECKING:
    from trialpacs.records.export import Original
from trialpacs.records.phi import RecordPhi

CLEAN_PIXEL = ("113101", "DCM", "Clean Pixel Data Option")
CLEAN_STRUCTURED = ("113104", "DCM", "Clean Structured Content Option")
VIDEO_CHECK_FRAMES = 3


@dataclass(frozen=True)
class RecordOptions:
    """Knobs of the payload cleaners (the defaults are the documented ones)."""

    pdf_ocr: bool = True
    video_sample_every: int = 5


def is_record(ds: Dataset) -> bool:
    sop = str(ds.get("SOPClassUID", ""))
    if sop in wrap.RECORD_CLASSES:
        return True
    meta = getattr(ds, "file_meta", None)
    ts = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    return ts in video.DICOM_STREAM_FORMATS


def kind(ds: Dataset) -> RecordFormat:
    """What the wrapper carries, in the terms of the original formats."""
    sop = str(ds.get("SOPClassUID", ""))
    if sop == wrap.ENCAPSULATED_PDF:
        return RecordFormat.PDF
    if sop in wrap.SR_CLASSES:
        fmt = wrap.sr_texts(ds).get(wrap.FORMAT_CODE[0], RecordFormat.TEXT.value)
        try:
            return RecordFormat(fmt)
        except ValueError:
            return RecordFormat.TEXT
    return RecordFormat.VIDEO


def _identity_terms(p: PatientIdentity) -> list[tuple[str, str]]:
    out = [("NAME", p.name), ("ID", p.patient_id), ("DATE", p.birth_date), *p.extra]
    return [(label, v) for label, v in out if v]


def _message_identity(fmt: RecordFormat, source: str) -> PatientIdentity | None:
    if fmt is RecordFormat.HL7V2:
        return hl7v2.patient_identity(hl7v2.parse(source))
    if fmt is RecordFormat.FHIR:
        return fhir.patient_identity(fhir.load(source))
    return None


def _add_code(ds: Dataset, code: tuple[str, str, str]) -> None:
    seq = ds.get("DeidentificationMethodCodeSequence")
    if seq is None:
        ds.DeidentificationMethodCodeSequence = DicomSequence([])
        seq = ds.DeidentificationMethodCodeSequence
    if any(getattr(i, "CodeValue", "") == code[0] for i in seq):
        return
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code
    seq.append(item)


def _fps(ds: Dataset) -> Fraction | None:
    try:
        if ds.get("FrameTime"):
            return Fraction(1000) / Fraction(str(ds.FrameTime))
        if ds.get("CineRate"):
            return Fraction(int(ds.CineRate))
    except (ValueError, ZeroDivisionError):
        return None
    return None


class RecordDeidentifier(Deidentifier):
    """The trial's engine, which also cleans the payload of records (PDF, reports, videos).

    A drop-in for :class:`Deidentifier`: the pipeline, ``deidentify_part10``
    and the CLI call ``deidentify`` as before; images take the same path as
    ever.
    """

    record_options = RecordOptions()
    # For record files that do not name their patient (PDF, text, video) given as such.
    record_patient: PatientIdentity | None = None
    # Called with each de-identified record in its original format (the CLI writes it out).
    record_sink: Callable[[Original, DeidResult], None] | None = None

    def deidentify_part10(self, data: bytes) -> tuple[bytes, DeidResult]:
        """Part 10 as before; a PDF, text, HL7, FHIR or video file is wrapped first."""
        if _wrappable(data, self.record_patient is not None):
            from trialpacs.records.intake import Intake, wrap_record

            _, data = wrap_record(data, "", Intake(patient=self.record_patient))
        out, result = super().deidentify_part10(data)
        if self.record_sink is not None and is_record(result.dataset):
            from trialpacs.records.export import original_format

            self.record_sink(original_format(dcmread(io.BytesIO(out))), result)
        return out, result

    def deidentify(
        self, ds: Dataset, *, in_place: bool = False, _meta: bool = True, _ts: str = ""
    ) -> DeidResult:
        if not is_record(ds):
            return super().deidentify(ds, in_place=in_place, _meta=_meta, _ts=_ts)
        if not in_place:
            ds = copy.deepcopy(ds)

        def header(d: Dataset) -> DeidResult:
            return Deidentifier.deidentify(self, d, in_place=True, _meta=_meta, _ts=_ts)

        return deidentify_instance(self, ds, self.record_options, header=header, ts=_ts)


def _wrappable(data: bytes, have_patient: bool) -> bool:
    """A record file, not DICOM; stray text counts only when a patient was named."""
    if len(data) > 132 and data[128:132] == b"DICM":
        return False
    try:
        fmt = detect_format(data)
    except InvalidInput:
        return False  # the DICOM reader names the problem as for any other file
    return fmt is not RecordFormat.TEXT or have_patient


def deidentify_instance(
    deid: Deidentifier,
    ds: Dataset,
    options: RecordOptions | None = None,
    *,
    header: Callable[[Dataset], DeidResult] | None = None,
    ts: str = "",
) -> DeidResult:
    """De-identify ``ds`` in place; records get their payload cleaned too.

    ``ts``: the transfer syntax the data set arrived in, when it has no file meta.
    """
    if header is None:
        header = lambda d: Deidentifier.deidentify(deid, d, in_place=True)  # noqa: E731
    if not is_record(ds):
        return header(ds)
    opts = options or RecordOptions()
    fmt = kind(ds)
    values = [(label, text) for _, label, text in phi_values(ds)]
    try:
        payload: Any
        if fmt is RecordFormat.PDF:
            payload = wrap.encapsulated_document(ds)
            del ds.EncapsulatedDocument
        elif fmt is RecordFormat.VIDEO:
            meta = getattr(ds, "file_meta", None)
            ts = ts or (str(meta.get("TransferSyntaxUID", "")) if meta is not None else "")
            stream_fmt = video.DICOM_STREAM_FORMATS.get(ts)
            if stream_fmt is None:
                raise DeidError(f"video in transfer syntax {ts} is not supported")
            payload = (wrap.video_stream(ds), stream_fmt, _fps(ds))
            del ds.PixelData
        else:
            texts = wrap.sr_texts(ds)
            payload = texts
            source = texts.get(wrap.SOURCE_CODE[0], "")
            ident = _message_identity(fmt, source) if source else None
            if ident is not None:
                values += _identity_terms(ident)
            del ds.ContentSequence
    except InvalidInput as exc:
        raise DeidError(f"record payload cannot be read: {exc}") from exc
    result = header(ds)
    phi = RecordPhi.build(values, result.subject_id, result.date_shift_days, use_ner=deid.use_ner)
    out = result.dataset
    try:
        if fmt is RecordFormat.PDF:
            red = pdf.redact(payload, phi, ocr.read_lines if opts.pdf_ocr else None)
            out.EncapsulatedDocument = red.data + (b"\x00" if len(red.data) % 2 else b"")
            out.EncapsulatedDocumentLength = len(red.data)
            out.BurnedInAnnotation = "NO"
            _add_code(out, CLEAN_PIXEL)
            result.notes.append(
                f"PDF: {red.glyphs_removed} glyph(s) removed, {red.images_masked} image(s) masked, "
                f"{red.pages_rasterised} page(s) rasterised"
            )
        elif fmt is RecordFormat.VIDEO:
            stream, stream_fmt, fps = payload
            res = video.clean(
                stream, ocr.detect, fmt=stream_fmt, fps=fps, sample_every=opts.video_sample_every
            )
            _check_video(res, phi)
            wrap.video_pixels(out, res.stream, res.width, res.height, res.frames, res.fps)
            out.BurnedInAnnotation = "NO"
            _add_code(out, CLEAN_PIXEL)
            result.notes.append(
                f"video: {res.frames} frames, {res.ocr_frames} OCR'd, {res.masked_frames} masked, "
                "audio and metadata removed"
            )
        else:
            report, source = _clean_text(fmt, payload, phi, deid)
            left = phi.residual(report + "\n" + source)
            if left:
                raise DeidError(f"{len(left)} identifying value(s) remain in the record text")
            out.ContentSequence = wrap.sr_content(report, source, fmt)
            _add_code(out, CLEAN_STRUCTURED)
    except InvalidInput as exc:
        raise DeidError(f"record cannot be de-identified: {exc}") from exc
    return result


def _clean_text(
    fmt: RecordFormat, texts: dict[str, str], phi: RecordPhi, deid: Deidentifier
) -> tuple[str, str]:
    source = texts.get(wrap.SOURCE_CODE[0], "")
    trial = deid.trial
    if fmt is RecordFormat.HL7V2:
        cleaned = hl7v2.deidentify(source, phi, trial_id=trial.trial_id, site_id=trial.site_id)
        return hl7v2.report_text(hl7v2.parse(cleaned.text)), cleaned.text
    if fmt is RecordFormat.FHIR:
        secret: bytes = deid._secret  # the trial's key: resource ids map like UIDs do

        def token(value: str) -> str:
            return hmac.new(secret, f"fhir:{value}".encode(), "sha256").hexdigest()[:32]

        result = fhir.deidentify(
            source,
            phi,
            trial_id=trial.trial_id,
            token=token,
            pdf=lambda b: pdf.redact(b, phi, ocr.read_lines).data,
        )
        return fhir.report_text(result.document), result.text
    return phi.scrub(texts.get(wrap.TEXT_CODE[0], "")), ""


def _check_video(res: video.VideoResult, phi: RecordPhi) -> None:
    """Read a few output frames again: no identifying value may be legible."""
    n = res.frames
    wanted = {0, n // 2, n - 1}
    for i, img in enumerate(video.frames(res.stream, "h264")):
        if i in wanted:
            for _, text in ocr.read_lines(img):
                if phi.residual(text):
                    raise DeidError(
                        f"video frame {i}: identifying text still legible after masking"
                    )
        if i >= max(wanted):
            break
