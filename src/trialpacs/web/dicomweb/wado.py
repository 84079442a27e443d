"""WADO-RS routes (PS3.18 10.4): instances, metadata, frames, bulk data, rendered.

Handlers only negotiate media types and shape responses; finding instances is
trialpacs.index.lookup, decoding and rendering is trialpacs.dicom.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse
from pydicom.dataset import Dataset
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from trialpacs.archive import Archive
from trialpacs.dicom import frames as frames_mod
from trialpacs.dicom.render import (
    RenderOptions,
    encode,
    parse_viewport,
    parse_window,
    render,
)
from trialpacs.dicom.transcode import EXPLICIT_LE, to_explicit_le
from trialpacs.dicom.uids import require_uid
from trialpacs.errors import InvalidInput, NotFound
from trialpacs.index import lookup
from trialpacs.index.lookup import InstanceRef
from trialpacs.web import multipart
from trialpacs.web.deps import Visible, base_url, get_archive, visible_studies
from trialpacs.web.errors import NotAcceptable
from trialpacs.web.mediatypes import matches, parse_accept
from trialpacs.web.ranges import ranged_file_response, ranged_response

router = APIRouter()
DICOM_JSON = "application/dicom+json"
IMPLICIT_LE = "1.2.840.10008.1.2"


def _uids(study: str, series: str | None = None, sop: str | None = None) -> None:
    require_uid(study, "Study Instance UID in the URL")
    if series is not None:
        require_uid(series, "Series Instance UID in the URL")
    if sop is not None:
        require_uid(sop, "SOP Instance UID in the URL")


def _find(
    archive: Archive,
    visible: Visible,
    study: str,
    series: str | None = None,
    sop: str | None = None,
) -> list[InstanceRef]:
    with archive.db.read() as session:
        refs = lookup.instances(session, study, series, sop, visible=visible)
    if not refs:
        raise NotFound("no such " + ("instance" if sop else "series" if series else "study"))
    return refs


# --- instances --------------------------------------------------------------


@dataclass(frozen=True)
class DicomChoice:
    """How to send instances: keep the stored syntax, or convert to one."""

    target: str | None  # None: as stored


def choose_dicom(accept: str | None) -> DicomChoice:
    for media in parse_accept(accept):
        if media.type == "multipart/related":
            ptype = media.part_type or "application/dicom"
            if ptype != "application/dicom":
                continue
        elif not (matches(media.type, "application/dicom") or media.type == "*/*"):
            continue
        ts = media.transfer_syntax
        if ts == "*":
            return DicomChoice(None)
        if ts is None or ts == EXPLICIT_LE:
            return DicomChoice(EXPLICIT_LE)
        return DicomChoice(ts)
    raise NotAcceptable('instances are served as multipart/related; type="application/dicom"')


def _instance_bytes(archive: Archive, ref: InstanceRef, choice: DicomChoice) -> tuple[bytes, str]:
    data = archive.store.get(ref.blob_key)
    if choice.target is None or choice.target == ref.transfer_syntax:
        return data, ref.transfer_syntax
    if choice.target == EXPLICIT_LE:
        return to_explicit_le(data, ref.transfer_syntax), EXPLICIT_LE
    raise NotAcceptable(
        f"transfer syntax {choice.target} is not offered for this instance; "
        f"it is stored as {ref.transfer_syntax} and can be sent as {EXPLICIT_LE}"
    )


def _check_convertible(refs: list[InstanceRef], choice: DicomChoice) -> None:
    if choice.target in (None, EXPLICIT_LE):
        return
    if any(ref.transfer_syntax != choice.target for ref in refs):
        raise NotAcceptable(
            f"transfer syntax {choice.target} is not available for every instance; "
            f"request transfer-syntax=* (as stored) or {EXPLICIT_LE}"
        )


def _stream_instances(archive: Archive, refs: list[InstanceRef], choice: DicomChoice) -> Response:
    _check_convertible(refs, choice)
    boundary = multipart.new_boundary()

    def parts() -> Iterator[tuple[str, bytes]]:
        for ref in refs:
            data, ts = _instance_bytes(archive, ref, choice)
            yield f"application/dicom; transfer-syntax={ts}", data

    body = multipart.stream(parts(), boundary)
    ctype = multipart.content_type(boundary, "application/dicom", choice.target or None)
    return StreamingResponse(iterate_in_threadpool(body), media_type=ctype)


@router.get("/studies/{study}")
async def retrieve_study(
    study: str,
    request: Request,
    archive: Archive = Depends(get_archive),
    visible: Visible = Depends(visible_studies),
) -> Response:
    _uids(study)
    choice = choose_dicom(request.headers.get("accept"))
    refs = await run_in_threadpool(_find, archive, visible, study)
    return _stream_instances(archive, refs, choice)


@router.get("/studies/{study}/series/{series}")
async def retrieve_series(
    study: str,
    series: str,
    request: Request,
    archive: Archive = Depends(get_archive),
    visible: Visible = Depends(visible_studies),
) -> Response:
    _uids(study, series)
    choice = choose_dicom(request.headers.get("accept"))
    refs = await run_in_threadpool(_find, archive, visible, study, series)
    return _stream_instances(archive, refs, choice)


@router.get("/studies/{study}/series/{series}/instances/{sop}")
async def retrieve_instance(
    study: str,
    series: str,
    sop: str,
    request: Request,
    archive: Archive = Depends(get_archive),
    visible: Visible = Depends(visible_studies),
) -> Response:
    _uids(study, series, sop)
    choice = choose_dicom(request.headers.get("accept"))
    refs = await run_in_threadpool(_find, archive, visible, study, series, sop)
    return _stream_instances(archive, refs, choice)


# --- metadata ---------------------------------------------------------------


def _check_json_accept(request: Request) -> None:
    for media in parse_accept(request.headers.get("accept")):
        if matches(media.type, DICOM_JSON) or matches(media.type, "application/json"):
            return
    raise NotAcceptable("metadata is served as application/dicom+json")


async def _metadata(
    request: Request,
    archive: Archive,
    visible: Visible,
    study: str,
    series: str | None,
    sop: str | None,
) -> Response:
    _uids(study, series, sop)
    _check_json_accept(request)
    base = base_url(request)

    def run() -> bytes:
        with archive.db.read() as session:
            docs = list(lookup.metadata_documents(session, study, series, sop, visible=visible))
        if not docs:
            raise NotFound("no such " + ("instance" if sop else "series" if series else "study"))
        return lookup.metadata_array(iter(docs), base)

    body = await run_in_threadpool(run)
    return Response(body, media_type=DICOM_JSON)


@router.get("/studies/{study}/metadata")
async def study_metadata(
    study: str,
    request: Request,
    archive: Archive = Depends(get_archive),
    visible: Visible = Depends(visible_studies),
) -> Response:
    return await _metadata(request, archive, visible, study, None, None)


@router.get("/studies/{study}/series/{series}/metadata")
async def series_metadata(
    study: str,
    series: str,
    request: Request,
    archive: Archive = Depends(get_archive),
    visible: Visible = Depends(visible_studies),
) -> Response:
    return await _metadata(request, archive, visible, study, series, None)


@router.get("/studies/{study}/series/{series}/instances/{sop}/metadata")
async def instance_metadata(
    study: str,
    series: str,
    sop: str,
    request: Request,
    archive: Archive = Depends(get_archive),
    visible: Visible = Depends(visible_studies),
) -> Response:
    return await _metadata(request, archive, visible, study, series, sop)


# --- frames and bulk data ---------------------------------------------------


def _frame_numbers(raw: str) -> list[int]:
    try:
        numbers = [int(n) for n in raw.split(",") if n.strip()]
    except ValueError:
        raise InvalidInput(f"frame list must be numbers separated by commas, got {raw!r}") from None
    if not numbers:
        raise InvalidInput("no frame numbers given")
    if len(numbers) > 10_000:
        raise InvalidInput("too many frames requested at once")
    return numbers


def choose_frames(accept: str | None, stored_ts: str) -> bool:
    """True to send frames as stored, False to decode them to uncompressed bytes.

    The PS3.18 default for frames is uncompressed application/octet-stream;
    ``transfer-syntax=*`` (what OHIF sends) and ``*/*`` take the stored form.
    """
    stored_type = frames_mod.FRAME_MEDIA_TYPES.get(stored_ts, "application/octet-stream")
    for media in parse_accept(accept):
        if media.type == "*/*":
            return True
        if media.type != "multipart/related":
            continue
        ptype = media.part_type or "application/octet-stream"
        ts = media.transfer_syntax
        if ts == "*":
            return True
        if ptype == "application/octet-stream":
            if ts is None or ts == EXPLICIT_LE:
                return False
            if ts == stored_ts:
                return True
            continue
        if matches(ptype, stored_type) and ts in (None, stored_ts):
            return True
    raise NotAcceptable(
        f"frames of this instance are available uncompressed (application/octet-stream) or "
        f"as stored ({stored_type}; transfer-syntax={stored_ts})"
    )


@router.get("/studies/{study}/series/{series}/instances/{sop}/frames/{frame_list}")
async def retrieve_frames(
    study: str,
    series: str,
    sop: str,
    frame_list: str,
    request: Request,
    archive: Archive = Depends(get_archive),
    visible: Visible = Depends(visible_studies),
) -> Response:
    _uids(study, series, sop)
    numbers = _frame_numbers(frame_list)

    def run() -> Response:
        ref = _find(archive, visible, study, series, sop)[0]
        return frames_response(ref, archive.store.get(ref.blob_key), numbers, request)

    return await run_in_threadpool(run)


def frames_response(
    ref: InstanceRef, data: bytes, numbers: list[int], request: Request
) -> Response:
    """The frames of one instance (``data``, from whichever store holds it)."""
    as_stored = choose_frames(request.headers.get("accept"), ref.transfer_syntax)
    ds = frames_mod.load(data)
    if as_stored:
        result, ts = frames_mod.native_frames(ds, numbers), ref.transfer_syntax
    else:
        result, ts = frames_mod.uncompressed_frames(ds, numbers), EXPLICIT_LE
    boundary = multipart.new_boundary()
    part_type = result[0].media_type
    parts = [(f"{f.media_type}; transfer-syntax={f.transfer_syntax}", f.data) for f in result]
    body = b"".join(multipart.stream(parts, boundary))
    return Response(body, media_type=multipart.content_type(boundary, part_type, ts))


@router.get("/studies/{study}/series/{series}/instances/{sop}/bulkdata/{tag}")
async def retrieve_bulkdata(
    study: str,
    series: str,
    sop: str,
    tag: str,
    request: Request,
    archive: Archive = Depends(get_archive),
    visible: Visible = Depends(visible_studies),
) -> Response:
    _uids(study, series, sop)
    tag_int = bulkdata_tag(tag)

    def run() -> Response:
        ref = _find(archive, visible, study, series, sop)[0]
        return bulkdata_response(ref, archive.store.get(ref.blob_key), tag_int, request)

    return await run_in_threadpool(run)


def bulkdata_tag(tag: str) -> int:
    try:
        tag_int = int(tag, 16)
    except ValueError:
        raise InvalidInput(f"bulk data tag must be 8 hex digits, got {tag!r}") from None
    if len(tag) != 8:
        raise InvalidInput(f"bulk data tag must be 8 hex digits, got {tag!r}")
    return tag_int


def bulkdata_response(ref: InstanceRef, data: bytes, tag_int: int, request: Request) -> Response:
    """One bulk data element of an instance (``data``, from whichever store holds it)."""
    tag = f"{tag_int:08X}"

    def run() -> tuple[bytes, str]:
        ds = frames_mod.load(data)
        if tag_int not in ds:
            raise NotFound(f"the instance has no element {tag.upper()}")
        if tag_int == 0x7FE00010:
            as_stored = choose_frames(request.headers.get("accept"), ref.transfer_syntax)
            count = frames_mod.frame_count(ds)
            numbers = list(range(1, count + 1))
            fr = (
                frames_mod.native_frames(ds, numbers)
                if as_stored
                else frames_mod.uncompressed_frames(ds, numbers)
            )
            if not fr[0].transfer_syntax or fr[0].media_type == "application/octet-stream":
                return b"".join(f.data for f in fr), "application/octet-stream"
            return fr[0].data, f"{fr[0].media_type}; transfer-syntax={fr[0].transfer_syntax}"
        value = ds[tag_int].value
        if not isinstance(value, bytes | bytearray):
            raise NotFound(f"element {tag.upper()} is not bulk data")
        return bytes(value), "application/octet-stream"

    payload, ptype = run()
    boundary = multipart.new_boundary()
    body = b"".join(multipart.stream([(ptype, payload)], boundary))
    return Response(body, media_type=multipart.content_type(boundary, ptype.split(";")[0]))


# --- rendered and thumbnails ------------------------------------------------


def render_options(request: Request, thumbnail: bool = False) -> RenderOptions:
    q = request.query_params
    media_type = "image/jpeg"
    for media in parse_accept(request.headers.get("accept")):
        if media.type in ("image/jpeg", "image/png", "image/gif"):
            media_type = media.type
            break
        if media.type in ("*/*", "image/*"):
            break
    else:
        raise NotAcceptable("rendered images are served as image/jpeg, image/png or image/gif")
    quality = q.get("quality")
    viewport = parse_viewport(q.get("viewport"))
    if thumbnail and viewport is None:
        viewport = (128, 128)
    try:
        quality_value = int(quality) if quality else 90
    except ValueError:
        raise InvalidInput("quality must be a whole number") from None
    return RenderOptions(
        media_type=media_type,
        window=parse_window(q.get("window")),
        viewport=viewport,
        quality=quality_value,
    )


def _render_ref(archive: Archive, ref: InstanceRef, frame: int, options: RenderOptions) -> bytes:
    ds = frames_mod.load(archive.store.get(ref.blob_key))
    from trialpacs.records.video import DICOM_STREAM_FORMATS

    if ref.transfer_syntax in DICOM_STREAM_FORMATS:
        return _video_frame(ds, DICOM_STREAM_FORMATS[ref.transfer_syntax], frame, options)
    if ref.sop_class_uid == ENCAPSULATED_PDF:
        return _pdf_page(ds, frame, options)
    return render(ds, frame, options)


ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"


def _pdf_page(ds: Dataset, page: int, options: RenderOptions) -> bytes:
    """Page ``page`` of an Encapsulated PDF (pdfium through pdfplumber), for thumbnails."""
    import io

    import pdfplumber

    from trialpacs.records.dicomwrap import encapsulated_document

    with pdfplumber.open(io.BytesIO(encapsulated_document(ds))) as doc:
        if not 1 <= page <= len(doc.pages):
            raise NotFound(f"the document has no page {page}")
        image = doc.pages[page - 1].to_image(resolution=72).original
        return encode(image.convert("RGB"), options)


SR_CLASS_ROOT = "1.2.840.10008.5.1.4.1.1.88."  # every Structured Report storage class


def _sr_thumbnail(ds: Dataset, options: RenderOptions) -> bytes:
    """A structured report's thumbnail: a page glyph labelled with what the report is.

    PS3.18 10.4.3.3.4 asks a thumbnail for "a meaningful representation" the
    origin server chooses, with no patient identifying information. An SR has
    no pixels; its text is not drawn (de-identified text can still hold a
    name the engine missed, and would not be legible at thumbnail size), only
    grey bars standing for lines and the kind of record (HL7 v2, FHIR, text)
    or the modality, so every SR of a kind has the same thumbnail.
    """
    from PIL import Image, ImageDraw, ImageFont

    from trialpacs.records.deidentify import is_record, kind

    label = str(ds.get("Modality", "") or "SR")
    if is_record(ds):
        label = {"hl7v2": "HL7 v2", "fhir": "FHIR", "text": "Text"}.get(kind(ds).value, label)
    image = Image.new("RGB", (256, 256), (214, 219, 226))
    draw = ImageDraw.Draw(image)
    draw.rectangle((48, 16, 208, 240), fill=(255, 255, 255), outline=(120, 126, 136), width=3)
    draw.rectangle((48, 16, 208, 72), fill=(40, 64, 104))
    font = ImageFont.load_default(size=30)
    draw.text((128, 44), label, fill=(255, 255, 255), font=font, anchor="mm")
    for i, width in enumerate((128, 112, 128, 96, 120, 128, 72)):
        y = 92 + i * 20
        draw.rectangle((64, y, 64 + width, y + 8), fill=(150, 156, 166))
    return encode(image, options)


def _video_frame(ds: Dataset, stream_format: str, frame: int, options: RenderOptions) -> bytes:
    """Frame ``frame`` of a DICOM video (thumbnails and rendered frames of videos)."""
    from PIL import Image

    from trialpacs.records.dicomwrap import video_stream
    from trialpacs.records.video import frames

    for number, rgb in enumerate(frames(video_stream(ds), stream_format), start=1):
        if number == frame:
            return encode(Image.fromarray(rgb, mode="RGB"), options)
    raise NotFound(f"the video has no frame {frame}")


def render_target(refs: list[InstanceRef], sop: str | None) -> InstanceRef:
    """The instance a study/series rendering shows: the middle image of the set."""
    image_refs = [r for r in refs if r.number_of_frames is not None or r.sop_class_uid]
    return image_refs[len(image_refs) // 2] if sop is None else image_refs[0]


async def _rendered(
    request: Request,
    archive: Archive,
    visible: Visible,
    study: str,
    series: str | None,
    sop: str | None,
    frame: int | None,
    thumbnail: bool,
) -> Response:
    _uids(study, series, sop)
    options = render_options(request, thumbnail)

    def run() -> bytes:
        ref = render_target(_find(archive, visible, study, series, sop), sop)
        if thumbnail and frame is None and ref.sop_class_uid.startswith(SR_CLASS_ROOT):
            return _sr_thumbnail(frames_mod.load(archive.store.get(ref.blob_key)), options)
        return _render_ref(archive, ref, frame or 1, options)

    body = await run_in_threadpool(run)
    return Response(body, media_type=options.media_type)


@router.get("/studies/{study}/series/{series}/instances/{sop}/rendered")
async def rendered_instance(
    study: str,
    series: str,
    sop: str,
    request: Request,
    archive: Archive = Depends(get_archive),
    visible: Visible = Depends(visible_studies),
) -> Response:
    video = await _rendered_video(request, archive, visible, study, series, sop)
    if video is not None:
        return video
    return await _rendered(request, archive, visible, study, series, sop, None, False)


def _wants_video(accept: str | None) -> bool:
    """video/mp4 unless the caller asks for an image first (a ``<video>`` sends ``*/*``)."""
    for media in parse_accept(accept):
        if media.type in ("image/jpeg", "image/png", "image/gif", "image/*"):
            return False
        if media.type in ("video/mp4", "video/*", "*/*"):
            return True
    return False


async def _rendered_video(
    request: Request, archive: Archive, visible: Visible, study: str, series: str, sop: str
) -> Response | None:
    """A video instance rendered is the video itself, as MP4.

    OHIF's video viewport (``singlepart: 'video'``) and a plain ``<video>``
    load ``.../rendered``: a browser plays MP4, not an H.264 elementary stream
    or a multipart body. Single byte ranges are answered (206), so the
    browser can seek before it has the whole file; the MP4 is built once and
    kept on disk (``records.mp4cache``), so a range reads only its part. None: not a video, or an
    image was asked for.
    """
    from trialpacs.records.video import DICOM_STREAM_FORMATS

    _uids(study, series, sop)
    if not _wants_video(request.headers.get("accept")):
        return None

    from trialpacs.records.export import Original, original_format
    from trialpacs.records.mp4cache import OpenVideo, cache_for, serve

    def run() -> Original | OpenVideo | None:
        ref = _find(archive, visible, study, series, sop)[0]
        if ref.transfer_syntax not in DICOM_STREAM_FORMATS:
            return None
        return serve(
            cache_for(archive.settings.data_dir),
            ref.blob_key,
            lambda: original_format(frames_mod.load(archive.store.get(ref.blob_key))),
        )

    got = await run_in_threadpool(run)
    if got is None:
        return None
    if isinstance(got, OpenVideo):
        return ranged_file_response(request, got.fh, got.video.size, "video/mp4", got.video.etag)
    return ranged_response(request, got.data, "video/mp4")


@router.get("/studies/{study}/series/{series}/instances/{sop}/frames/{frame}/rendered")
async def rendered_frame(
    study: str,
    series: str,
    sop: str,
    frame: int,
    request: Request,
    archive: Archive = Depends(get_archive),
    visible: Visible = Depends(visible_studies),
) -> Response:
    return await _rendered(request, archive, visible, study, series, sop, frame, False)


@router.get("/studies/{study}/series/{series}/rendered")
async def rendered_series(
    study: str,
    series: str,
    request: Request,
    archive: Archive = Depends(get_archive),
    visible: Visible = Depends(visible_studies),
) -> Response:
    return await _rendered(request, archive, visible, study, series, None, None, False)


@router.get("/studies/{study}/rendered")
async def rendered_study(
    study: str,
    request: Request,
    archive: Archive = Depends(get_archive),
    visible: Visible = Depends(visible_studies),
) -> Response:
    return await _rendered(request, archive, visible, study, None, None, None, False)


@router.get("/studies/{study}/series/{series}/instances/{sop}/thumbnail")
async def thumbnail_instance(
    study: str,
    series: str,
    sop: str,
    request: Request,
    archive: Archive = Depends(get_archive),
    visible: Visible = Depends(visible_studies),
) -> Response:
    return await _rendered(request, archive, visible, study, series, sop, None, True)


@router.get("/studies/{study}/series/{series}/instances/{sop}/frames/{frame}/thumbnail")
async def thumbnail_frame(
    study: str,
    series: str,
    sop: str,
    frame: int,
    request: Request,
    archive: Archive = Depends(get_archive),
    visible: Visible = Depends(visible_studies),
) -> Response:
    return await _rendered(request, archive, visible, study, series, sop, frame, True)


@router.get("/studies/{study}/series/{series}/thumbnail")
async def thumbnail_series(
    study: str,
    series: str,
    request: Request,
    archive: Archive = Depends(get_archive),
    visible: Visible = Depends(visible_studies),
) -> Response:
    return await _rendered(request, archive, visible, study, series, None, None, True)


@router.get("/studies/{study}/thumbnail")
async def thumbnail_study(
    study: str,
    request: Request,
    archive: Archive = Depends(get_archive),
    visible: Visible = Depends(visible_studies),
) -> Response:
    return await _rendered(request, archive, visible, study, None, None, None, True)
