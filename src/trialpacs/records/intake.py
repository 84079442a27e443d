"""Records into a site's quarantine: detect, read the patient, wrap as DICOM, store.

The one store path (``trialpacs.trials.intake.store_for_site``) does the rest
exactly as for images; the pipeline then de-identifies and publishes the
wrapper like any other series.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, replace

import av

from trialpacs.archive import Archive
from trialpacs.dicom.parse import parse_part10
from trialpacs.dicom.uids import require_uid
from trialpacs.errors import InvalidInput
from trialpacs.records import dicomwrap as wrap
from trialpacs.records import fhir, hl7v2, video
from trialpacs.records.deidentify import is_record
from trialpacs.records.formats import RecordFormat, detect_format
from trialpacs.records.identity import PatientIdentity
from trialpacs.trials.intake import store_for_site


@dataclass(frozen=True)
class Intake:
    """What the site coordinator says about the file (patient optional for HL7/FHIR)."""

    patient: PatientIdentity | None = None
    study_uid: str = ""
    time_point: str = ""
    description: str = ""
    modality: str = ""


@dataclass(frozen=True)
class IntakeResult:
    format: RecordFormat
    study_uid: str
    series_uid: str
    sop_uid: str


def _patient(given: PatientIdentity | None, found: PatientIdentity | None) -> PatientIdentity:
    if found is None:
        if given is None:
            raise InvalidInput("patient_id is required for PDF, text and video records")
        return given
    if given is None:
        return found
    if given.patient_id != found.patient_id:
        raise InvalidInput(
            f"the message is about patient {found.patient_id!r}, not {given.patient_id!r}"
        )
    # The coordinator's issuer (what the PACS sends with the images) wins.
    return replace(found, issuer=given.issuer)


def _h264(data: bytes) -> tuple[bytes, int, int, int, video.Fraction]:
    """An H.264 elementary stream of the video: remuxed when it is H.264, re-encoded otherwise."""
    width, height, fps = video.probe(data)
    with video._open(data, None) as src:
        s_in = src.streams.video[0]
        if s_in.codec_context.name == "h264" and width % 2 == 0 and height % 2 == 0:
            buf = io.BytesIO()
            n = 0
            with av.open(buf, mode="w", format="h264") as out:
                s_out = out.add_stream_from_template(s_in)
                for packet in src.demux(s_in):
                    if packet.size == 0:
                        continue
                    packet.stream = s_out
                    out.mux(packet)
                    n += 1
            return buf.getvalue(), width, height, n, fps
    res = video.clean(data, lambda _img: [], sample_every=1_000_000)
    return res.stream, res.width, res.height, res.frames, res.fps


def wrap_record(data: bytes, filename: str, intake: Intake) -> tuple[RecordFormat, bytes]:
    """The identified DICOM wrapper of a record file (DICOM records pass through)."""
    fmt = detect_format(data, filename)
    if intake.study_uid:
        require_uid(intake.study_uid, "study_uid")
    if intake.modality and not re.fullmatch(r"[A-Z]{2,4}", intake.modality):
        raise InvalidInput(f"modality {intake.modality!r} is not a DICOM modality code")
    if fmt is RecordFormat.DICOM:
        parsed = parse_part10(data)
        if not is_record(parsed.dataset):
            raise InvalidInput(
                "this DICOM object is not a record (Encapsulated PDF, SR or video); "
                "send images through STOW-RS or C-STORE"
            )
        return fmt, data

    def info(patient: PatientIdentity) -> wrap.WrapInfo:
        return wrap.WrapInfo(
            patient=patient,
            study_uid=intake.study_uid,
            time_point=intake.time_point,
            description=intake.description,
            modality=intake.modality,
        )

    if fmt is RecordFormat.PDF:
        return fmt, wrap.wrap_pdf(data, info(_patient(intake.patient, None)))
    if fmt is RecordFormat.VIDEO:
        stream, w, h, n, fps = _h264(data)
        return fmt, wrap.wrap_video(stream, w, h, n, fps, info(_patient(intake.patient, None)))
    text = data.decode("utf-8-sig") if fmt is not RecordFormat.HL7V2 else _hl7_text(data)
    if fmt is RecordFormat.HL7V2:
        found = hl7v2.patient_identity(hl7v2.parse(text))
        report = hl7v2.report_text(hl7v2.parse(text))
    elif fmt is RecordFormat.FHIR:
        doc = fhir.load(text)
        found = fhir.patient_identity(doc)
        report = fhir.report_text(doc)
    else:
        return fmt, wrap.wrap_text(text, text, fmt, info(_patient(intake.patient, None)))
    patient = _patient(intake.patient, replace(found, issuer=""))
    return fmt, wrap.wrap_text(report, text, fmt, info(patient))


def _hl7_text(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def take_in(
    archive: Archive, trial_id: str, site_id: str, data: bytes, filename: str, intake: Intake
) -> IntakeResult:
    """Wrap and store one record in the site's quarantine; errors name the problem."""
    limit = archive.settings.max_instance_bytes
    if limit and len(data) > limit:
        raise InvalidInput(f"the file is {len(data)} bytes; the limit is {limit}")
    fmt, wrapped = wrap_record(data, filename, intake)
    outcome = store_for_site(archive, [wrapped], trial_id, site_id)[0]
    if isinstance(outcome, Exception):
        raise outcome
    return IntakeResult(fmt, outcome.study_uid, outcome.series_uid, outcome.sop_uid)
