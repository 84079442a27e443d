"""The export job: governance, package writing, history and audit, in one place.

The CLI, the HTTP API and the benchmark all call :func:`run_export` with
plain values. Only the published archive is read: the cohort query names
the published collection, and :func:`published_bytes` refuses any instance
row that is not published data in the archive's own store, so an export of
identified data is impossible by construction (and tested).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom import dcmread
from sqlalchemy import select, update

from trialpacs.access.policy import Principal
from trialpacs.archive import Archive
from trialpacs.audit.chain import AuditEvent, record
from trialpacs.config.profiles import build_profile
from trialpacs.deid.profile import Profile
from trialpacs.errors import NotFound, TrialpacsError
from trialpacs.exports import manifest, nifti
from trialpacs.exports.destinations import Destination, open_destination
from trialpacs.exports.governance import ExportRefused, require_sites, require_trial
from trialpacs.exports.models import ExportRun
from trialpacs.exports.saved import CohortVersion, get_cohort, parse_ref
from trialpacs.exports.select import CohortSeries, counts, resolve
from trialpacs.index.models import Instance, Series, Study, utcnow
from trialpacs.trials import backends, catalog
from trialpacs.trials.models import PUBLISHED, DeidProfileDef

# (stage, done, total): "series" while packaging, "files" for the closing files.
Progress = Callable[[str, int, int], None]
_SAFE = re.compile(r"[^A-Za-z0-9._-]")
COPY_THREADS = 8


class IdentifiedDataRefused(TrialpacsError):
    """An export reached for data that is not published de-identified data."""


@dataclass(frozen=True)
class ExportOptions:
    nifti: bool = False

    def to_mapping(self) -> dict[str, Any]:
        return {"nifti": self.nifti, "layout": "dicom/<subject>/<timepoint>/<series_uid>"}


@dataclass
class ExportResult:
    export_id: str
    cohort: str
    trial_id: str
    destination_kind: str
    destination: str
    series: int = 0
    instances: int = 0
    bytes: int = 0
    files_written: int = 0
    files_skipped: int = 0
    manifest_sha256: str = ""
    seconds: float = 0.0
    nifti_problems: list[str] = field(default_factory=list)

    def to_mapping(self) -> dict[str, Any]:
        return {
            "export_id": self.export_id,
            "cohort": self.cohort,
            "trial": self.trial_id,
            "destination_kind": self.destination_kind,
            "destination": self.destination,
            "series": self.series,
            "instances": self.instances,
            "bytes": self.bytes,
            "files_written": self.files_written,
            "files_skipped": self.files_skipped,
            "manifest_sha256": self.manifest_sha256,
            "seconds": round(self.seconds, 3),
            "nifti_problems": self.nifti_problems,
        }


@dataclass(frozen=True)
class InstanceRow:
    sop_uid: str
    blob_key: str
    store: str | None
    collection: str


def published_bytes(archive: Archive, row: InstanceRow) -> bytes:
    """The bytes of a published instance; anything else is refused, never read."""
    refused = IdentifiedDataRefused(
        f"instance {row.sop_uid} is not published de-identified data; exports never read it"
    )
    if row.collection != PUBLISHED:
        raise refused
    if row.store in (None, PUBLISHED):
        return archive.store.get(row.blob_key)
    # a named backend: only one declared for de-identified data
    reg = backends.registry(archive)
    try:
        spec = reg.spec(row.store)
    except TrialpacsError:
        raise refused from None
    if spec.purpose != "deidentified":
        raise refused
    return reg.store(row.store).get(row.blob_key)


def series_instances(archive: Archive, series_uid: str) -> list[InstanceRow]:
    with archive.db.read() as session:
        rows = session.execute(
            select(Instance.sop_uid, Instance.blob_key, Instance.store, Study.collection)
            .join(Series, Series.pk == Instance.series_pk)
            .join(Study, Study.pk == Instance.study_pk)
            .where(Series.series_uid == series_uid, Study.collection == PUBLISHED)
            .order_by(Instance.instance_number, Instance.pk)
        ).all()
    return [InstanceRow(*r) for r in rows]


def load_cohort(archive: Archive, principal: Principal, ref: str) -> CohortVersion:
    """A saved cohort the caller may export; a refused one answers like a missing one."""
    name, version = parse_ref(ref)
    try:
        cohort = get_cohort(archive.db, name, version)
    except NotFound:
        raise ExportRefused(f"no cohort {ref!r}") from None
    try:
        require_trial(principal, cohort.definition.trial)
    except ExportRefused:
        raise ExportRefused(f"no cohort {ref!r}") from None
    return cohort


def trial_profile(archive: Archive, trial_profile_name: str) -> tuple[Profile | None, str]:
    with archive.db.read() as session:
        defined = {
            p.name: json.loads(p.definition or "{}")
            for p in session.scalars(select(DeidProfileDef))
        }
    try:
        return build_profile(trial_profile_name, defined), ""
    except TrialpacsError as exc:
        return None, str(exc)


def _audit(
    archive: Archive,
    principal: Principal,
    outcome: str,
    *,
    trial: str,
    cohort: str,
    destination: str = "",
    reason: str = "",
    detail: dict[str, Any] | None = None,
) -> None:
    record(
        archive.db,
        AuditEvent(
            action="export.run",
            outcome=outcome,
            actor=principal.subject,
            roles=[str(g) for g in principal.grants],
            trial=trial,
            object=f"cohort={cohort}",
            new_value=destination,
            reason=reason,
            detail=detail or {},
        ),
    )


@dataclass
class PreparedExport:
    """An export that passed every check and is in the history as ``running``."""

    archive: Archive
    principal: Principal
    cohort: CohortVersion
    series: list[CohortSeries]
    dest: Destination
    options: ExportOptions
    result: ExportResult


def prepare_export(
    archive: Archive,
    principal: Principal,
    cohort_ref: str,
    destination: str,
    options: ExportOptions = ExportOptions(),
    *,
    allow_local: bool = True,
    export_id: str | None = None,
) -> PreparedExport:
    """Governance and destination checks, then the history row: refusals happen here."""
    export_id = export_id or uuid.uuid4().hex
    try:
        cohort = load_cohort(archive, principal, cohort_ref)
        series = resolve(archive, cohort.definition)
        require_sites(principal, cohort.definition.trial, {s.site_id for s in series})
    except ExportRefused as exc:
        _audit(archive, principal, "denied", trial="", cohort=cohort_ref, reason=str(exc))
        raise
    trial_id = cohort.definition.trial
    trial = catalog.get_trial(archive.db, trial_id)
    if trial is None:
        raise ExportRefused(f"no cohort {cohort_ref!r}")
    try:
        dest = open_destination(archive, destination, trial, export_id, allow_local=allow_local)
    except TrialpacsError as exc:
        _audit(
            archive, principal, "denied", trial=trial_id, cohort=cohort.ref,
            destination=destination, reason=str(exc),
        )  # fmt: skip
        raise
    with archive.db.write() as session:
        session.add(
            ExportRun(
                export_id=export_id,
                cohort_name=cohort.name,
                cohort_version=cohort.version,
                trial_id=trial_id,
                actor=principal.subject,
                destination_kind=dest.kind,
                destination=dest.label,
                state="running",
                series_count=len(series),
                instance_count=0,
                bytes=0,
                manifest_sha256="",
                detail="",
            )
        )
    result = ExportResult(export_id, cohort.ref, trial_id, dest.kind, dest.label)
    return PreparedExport(archive, principal, cohort, series, dest, options, result)


def execute_export(job: PreparedExport, progress: Progress | None = None) -> ExportResult:
    """Write the package of a prepared export; the history and the audit trail say how it went."""
    archive, principal, cohort, result = job.archive, job.principal, job.cohort, job.result
    started = time.monotonic()
    try:
        _write_package(
            archive, principal, cohort, job.series, job.dest, job.options, result, progress
        )
    except BaseException as exc:
        _finish(archive, result.export_id, "failed", result, detail=f"{type(exc).__name__}: {exc}")
        _audit(
            archive, principal, "failure", trial=result.trial_id, cohort=cohort.ref,
            destination=job.dest.label, reason=str(exc), detail={"export_id": result.export_id},
        )  # fmt: skip
        raise
    result.seconds = time.monotonic() - started
    _finish(archive, result.export_id, "done", result)
    _audit(
        archive,
        principal,
        "success",
        trial=result.trial_id,
        cohort=cohort.ref,
        destination=job.dest.label,
        detail={
            "export_id": result.export_id,
            "destination_kind": job.dest.kind,
            "series": result.series,
            "instances": result.instances,
            "bytes": result.bytes,
            "manifest_sha256": result.manifest_sha256,
        },
    )
    return result


def run_export(
    archive: Archive,
    principal: Principal,
    cohort_ref: str,
    destination: str,
    options: ExportOptions = ExportOptions(),
    *,
    progress: Progress | None = None,
    allow_local: bool = True,
    export_id: str | None = None,
) -> ExportResult:
    """Export a saved cohort version; recorded in the history and the audit trail."""
    job = prepare_export(
        archive, principal, cohort_ref, destination, options,
        allow_local=allow_local, export_id=export_id,
    )  # fmt: skip
    return execute_export(job, progress)


def _finish(
    archive: Archive, export_id: str, state: str, r: ExportResult, detail: str = ""
) -> None:
    with archive.db.write() as session:
        session.execute(
            update(ExportRun)
            .where(ExportRun.export_id == export_id)
            .values(
                state=state,
                series_count=r.series,
                instance_count=r.instances,
                bytes=r.bytes,
                manifest_sha256=r.manifest_sha256,
                detail=detail,
                finished_at=utcnow(),
            )
        )


def _safe(text: str) -> str:
    return _SAFE.sub("_", text) or "_"


class _Writer:
    """Puts files into the destination unless an identical one is already there."""

    def __init__(self, dest: Destination, result: ExportResult) -> None:
        self.dest = dest
        self.result = result
        self.files: dict[str, str] = {}
        self._lock = threading.Lock()

    def put(self, path: str, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        present = self.dest.existing(path) == digest
        if not present:
            self.dest.put(path, data, digest)
        with self._lock:
            if present:
                self.result.files_skipped += 1
            else:
                self.result.files_written += 1
            self.files[path] = digest
        return digest


def _write_package(
    archive: Archive,
    principal: Principal,
    cohort: CohortVersion,
    series: list[CohortSeries],
    dest: Destination,
    options: ExportOptions,
    result: ExportResult,
    progress: Progress | None,
) -> None:
    out = _Writer(dest, result)
    entries: list[manifest.SeriesEntry] = []
    total = len(series)
    # Several series in flight (reads, writes, uploads and conversions overlap);
    # results are taken in cohort order, and at most a window of them is held.
    pool = ThreadPoolExecutor(max_workers=COPY_THREADS, thread_name_prefix="export")
    window: deque[Future[tuple[manifest.SeriesEntry, int, int]]] = deque()
    try:
        pending = iter(series)
        done = 0
        while True:
            while len(window) < 2 * COPY_THREADS:
                s = next(pending, None)
                if s is None:
                    break
                window.append(pool.submit(_series, archive, out, s, options, result))
            if not window:
                break
            entry, instances, size = window.popleft().result()
            entries.append(entry)
            result.series += 1
            result.instances += instances
            result.bytes += size
            done += 1
            if progress is not None:
                progress("series", done, total)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    result.nifti_problems.sort()
    dest.finish()  # the series are durable before the files that describe them
    table = manifest.rows(entries)
    ref = cohort.to_mapping()
    cohort_doc = {k: ref[k] for k in ("name", "version", "ref", "trial", "definition", "digest")}
    trial = catalog.get_trial(archive.db, cohort.definition.trial)
    profile, problem = trial_profile(archive, trial.profile if trial else "trial")
    sheet_json, sheet_md = manifest.datasheet(counts(series), cohort_doc)
    csv_bytes = manifest.manifest_csv(table)
    closing = [
        ("manifest.csv", csv_bytes),
        ("manifest.parquet", manifest.manifest_parquet(table)),
        ("datasheet.json", sheet_json),
        ("datasheet.md", sheet_md),
        ("cohort.json", (json.dumps(cohort_doc, indent=2, sort_keys=True) + "\n").encode()),
        ("README.md", manifest.readme(cohort_doc, profile, problem, options.to_mapping())),
    ]
    for i, (path, data) in enumerate(closing, 1):
        out.put(path, data)
        if progress is not None:
            progress("files", i, len(closing) + 2)
    out.put("SHA256SUMS", manifest.checksums(out.files))
    result.manifest_sha256 = hashlib.sha256(csv_bytes).hexdigest()
    info = {
        "export_id": result.export_id,
        "cohort": cohort.ref,
        "exported_by": principal.subject,
        "exported_at": utcnow().isoformat(),
        "destination": dest.label,
    }
    dest_info = (json.dumps(info, indent=2, sort_keys=True) + "\n").encode()
    dest.put("export.json", dest_info, hashlib.sha256(dest_info).hexdigest())
    dest.finish()
    if progress is not None:
        progress("files", len(closing) + 2, len(closing) + 2)


def _series(
    archive: Archive,
    out: _Writer,
    s: CohortSeries,
    options: ExportOptions,
    result: ExportResult,
) -> tuple[manifest.SeriesEntry, int, int]:
    """Copy one series' instances, and convert it when asked; (entry, instances, bytes)."""
    folder = f"{_safe(s.subject)}/{_safe(s.timepoint)}/{s.series_uid}"
    blobs = []
    for i, row in enumerate(series_instances(archive, s.series_uid), 1):
        data = published_bytes(archive, row)
        out.put(f"dicom/{folder}/{i:05d}.dcm", data)
        blobs.append(data)
    entry = manifest.SeriesEntry(s, f"dicom/{folder}")
    if options.nifti:
        entry = _nifti(out, s, folder, blobs, entry, result)
    return entry, len(blobs), sum(len(b) for b in blobs)


def _nifti(
    out: _Writer,
    s: CohortSeries,
    folder: str,
    blobs: list[bytes],
    entry: manifest.SeriesEntry,
    result: ExportResult,
) -> manifest.SeriesEntry:
    """Convert one series; only a volume that matches the DICOM geometry is kept."""
    with tempfile.TemporaryDirectory(prefix="tp-nifti-") as tmp:
        src = Path(tmp) / "dicom"
        src.mkdir()
        for i, data in enumerate(blobs, 1):
            (src / f"{i:05d}.dcm").write_bytes(data)
        try:
            written = nifti.convert_series(src, Path(tmp) / "out", s.series_uid)
        except (nifti.NiftiError, OSError) as exc:
            result.nifti_problems.append(f"{s.series_uid}: {exc}")
            return manifest.SeriesEntry(s, entry.dicom_path, "", f"failed: {exc}"[:200])
        volumes = [p for p in written if p.name.endswith((".nii", ".nii.gz"))]
        status = "unchecked"
        geometry = nifti.dicom_geometry(
            [dcmread(io.BytesIO(b), stop_before_pixels=True) for b in blobs]
        )
        if geometry is not None and len(volumes) == 1:
            problems = nifti.geometry_problems(nifti.nifti_geometry(volumes[0]), geometry)
            if problems:
                result.nifti_problems.append(f"{s.series_uid}: {problems[0]}")
                return manifest.SeriesEntry(
                    s, entry.dicom_path, "", f"geometry_mismatch: {problems[0]}"[:200]
                )
            status = "ok"
        paths = []
        for p in written:
            target = f"nifti/{folder.rsplit('/', 1)[0]}/{p.name}"
            out.put(target, p.read_bytes())
            if p in volumes:
                paths.append(target)
    return manifest.SeriesEntry(s, entry.dicom_path, ";".join(paths), status)


def export_history(archive: Archive, trials: list[str] | None) -> list[dict[str, Any]]:
    """Exports, newest first; ``trials`` None means every trial."""
    with archive.db.read() as session:
        stmt = select(ExportRun).order_by(ExportRun.created_at.desc(), ExportRun.pk.desc())
        if trials is not None:
            stmt = stmt.where(ExportRun.trial_id.in_(trials))
        rows = session.scalars(stmt).all()
    return [
        {
            "export_id": r.export_id,
            "cohort": f"{r.cohort_name}@{r.cohort_version}",
            "trial": r.trial_id,
            "actor": r.actor,
            "destination_kind": r.destination_kind,
            "destination": r.destination,
            "state": r.state,
            "series": r.series_count,
            "instances": r.instance_count,
            "bytes": r.bytes,
            "manifest_sha256": r.manifest_sha256,
            "detail": r.detail,
            "created_at": r.created_at.isoformat() if r.created_at else "",
            "finished_at": r.finished_at.isoformat() if r.finished_at else "",
        }
        for r in rows
    ]


def get_export(archive: Archive, export_id: str) -> ExportRun | None:
    with archive.db.read() as session:
        return session.scalars(select(ExportRun).where(ExportRun.export_id == export_id)).first()
