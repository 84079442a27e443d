"""Identified frames, bulk data, rendered images and thumbnails for PHI roles.

Below ``/dicomweb/trials/{trial}/sites/{site}/studies``, next to the
identified QIDO, metadata and instance routes of ``web.trials``: the same
check (``_require_phi``: the site's coordinator, 404 like a missing site for
anyone else), the same object lookup restricted to the site's quarantine, and
the bytes from the site's own backend. The media handling is the published
WADO-RS code (``web.dicomweb.wado``), so both answer alike; a refused object
gets exactly the answer of a missing one.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from trialpacs.access.tokens import Identity
from trialpacs.archive import Archive
from trialpacs.dicom import frames as frames_mod
from trialpacs.dicom.render import render
from trialpacs.errors import NotFound
from trialpacs.index import lookup
from trialpacs.index.lookup import InstanceRef
from trialpacs.index.models import Instance
from trialpacs.trials import backends
from trialpacs.trials.models import QUARANTINE
from trialpacs.web.deps import get_archive, require_identity
from trialpacs.web.dicomweb import wado
from trialpacs.web.trials import _PREFIX, _require_phi, _site_condition

router = APIRouter(tags=["trials"])
_INSTANCE = _PREFIX + "/{study}/series/{series}/instances/{sop}"


def _refs(
    archive: Archive,
    identity: Identity,
    trial: str,
    site: str,
    study: str,
    series: str | None,
    sop: str | None,
) -> list[InstanceRef]:
    _require_phi(archive, identity, trial, site)
    with archive.db.read() as session:
        refs = lookup.instances(
            session,
            study,
            series,
            sop,
            visible=_site_condition(trial, site),
            collection=QUARANTINE,
        )
    if not refs:
        raise NotFound("no such " + ("instance" if sop else "series" if series else "study"))
    return refs


def _bytes(archive: Archive, ref: InstanceRef) -> bytes:
    """From the backend the instance was placed in (its site's region)."""
    with archive.db.read() as session:
        store_name = session.scalar(select(Instance.store).where(Instance.pk == ref.pk))
    return backends.registry(archive).store(store_name).get(ref.blob_key)


@router.get(_INSTANCE + "/frames/{frame_list}")
async def identified_frames(
    trial: str,
    site: str,
    study: str,
    series: str,
    sop: str,
    frame_list: str,
    request: Request,
    archive: Archive = Depends(get_archive),
    identity: Identity = Depends(require_identity),
) -> Response:
    wado._uids(study, series, sop)
    numbers = wado._frame_numbers(frame_list)

    def run() -> Response:
        ref = _refs(archive, identity, trial, site, study, series, sop)[0]
        return wado.frames_response(ref, _bytes(archive, ref), numbers, request)

    return await run_in_threadpool(run)


@router.get(_INSTANCE + "/bulkdata/{tag}")
async def identified_bulkdata(
    trial: str,
    site: str,
    study: str,
    series: str,
    sop: str,
    tag: str,
    request: Request,
    archive: Archive = Depends(get_archive),
    identity: Identity = Depends(require_identity),
) -> Response:
    wado._uids(study, series, sop)
    tag_int = wado.bulkdata_tag(tag)

    def run() -> Response:
        ref = _refs(archive, identity, trial, site, study, series, sop)[0]
        return wado.bulkdata_response(ref, _bytes(archive, ref), tag_int, request)

    return await run_in_threadpool(run)


async def _rendered(
    request: Request,
    archive: Archive,
    identity: Identity,
    trial: str,
    site: str,
    study: str,
    series: str | None,
    sop: str | None,
    frame: int | None,
    thumbnail: bool,
) -> Response:
    wado._uids(study, series, sop)
    options = wado.render_options(request, thumbnail)

    def run() -> bytes:
        refs = _refs(archive, identity, trial, site, study, series, sop)
        ref = wado.render_target(refs, sop)
        return render(frames_mod.load(_bytes(archive, ref)), frame or 1, options)

    return Response(await run_in_threadpool(run), media_type=options.media_type)


def _rendering_routes(suffix: str, thumbnail: bool) -> None:
    """Instance, frame, series and study renderings (or thumbnails), as published WADO has."""

    @router.get(_INSTANCE + f"/{suffix}", name=f"identified_{suffix}_instance")
    async def instance(
        trial: str,
        site: str,
        study: str,
        series: str,
        sop: str,
        request: Request,
        archive: Archive = Depends(get_archive),
        identity: Identity = Depends(require_identity),
    ) -> Response:
        return await _rendered(
            request, archive, identity, trial, site, study, series, sop, None, thumbnail
        )

    @router.get(_INSTANCE + f"/frames/{{frame}}/{suffix}", name=f"identified_{suffix}_frame")
    async def frame(
        trial: str,
        site: str,
        study: str,
        series: str,
        sop: str,
        frame: int,
        request: Request,
        archive: Archive = Depends(get_archive),
        identity: Identity = Depends(require_identity),
    ) -> Response:
        return await _rendered(
            request, archive, identity, trial, site, study, series, sop, frame, thumbnail
        )

    @router.get(
        _PREFIX + f"/{{study}}/series/{{series}}/{suffix}", name=f"identified_{suffix}_series"
    )
    async def series_(
        trial: str,
        site: str,
        study: str,
        series: str,
        request: Request,
        archive: Archive = Depends(get_archive),
        identity: Identity = Depends(require_identity),
    ) -> Response:
        return await _rendered(
            request, archive, identity, trial, site, study, series, None, None, thumbnail
        )

    @router.get(_PREFIX + f"/{{study}}/{suffix}", name=f"identified_{suffix}_study")
    async def study_(
        trial: str,
        site: str,
        study: str,
        request: Request,
        archive: Archive = Depends(get_archive),
        identity: Identity = Depends(require_identity),
    ) -> Response:
        return await _rendered(
            request, archive, identity, trial, site, study, None, None, None, thumbnail
        )


_rendering_routes("rendered", thumbnail=False)
_rendering_routes("thumbnail", thumbnail=True)
