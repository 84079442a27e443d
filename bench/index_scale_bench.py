"""Index at scale: QIDO and metadata latency on PostgreSQL with 1,000,000 instances.

One command::

    .venv/bin/python bench/index_scale_bench.py [--instances 1000000] [--keep]

Creates a fresh PostgreSQL database on the machine's server (dropped at the
end unless ``--keep``), migrates it to heads, fills it with a bulk loader
(``COPY``), checks that the loader's rows are identical to what the real
store path writes for a sample of studies, then times through the real ASGI
app (bearer API key, audit on, as a deployment runs):

* the OHIF study list (``limit=101`` with OHIF's includefields), first page
  and a deep page;
* patient-name wildcard (``SMI*``) and a contains wildcard (``*ANDER*``);
* a study-date range, and ModalitiesInStudy;
* the study list as a reader of one trial (the policy's SQL filter);
* series metadata (WADO-RS ``.../series/{uid}/metadata``).

Why a bulk loader: one million instances through parse + store takes an
hour here. The loader builds one real Part 10 instance per series with
pydicom, then derives the other instances of the series by replacing the SOP
Instance UID and Instance Number, which are written with fixed widths, in the
bytes and in the DICOM JSON; hashes, keys and counters are computed exactly as
the store path computes them. ``verify_sample`` proves it: the same bytes go
through ``trialpacs.ingest.store.store_many`` into a second database and every
column of patients, studies, series and instances must match.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from pydicom.dataset import Dataset

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from dicomfactory import to_bytes  # noqa: E402
from support.services import PG_ADMIN_URL  # noqa: E402
from trialpacs.dicom import dicomjson  # noqa: E402
from trialpacs.dicom.parse import _dataset_offset, parse_part10  # noqa: E402
from trialpacs.index.records import extract  # noqa: E402
from trialpacs.index.writer import modalities_key  # noqa: E402

UID_ROOT = "1.2.826.0.1.3680043.10.1137"
SOP_MARK = 99_999  # instance counter of the template, replaced per instance
NUMBER_MARK = "987654"  # InstanceNumber of the template (6 characters, as every derived one)
# modality -> (series per study, instances per series); PT studies carry a CT series too.


def _words(text: str) -> list[str]:
    return text.split()


PROFILES: list[tuple[str, list[str], int]] = [
    ("CT", ["CT", "CT"], 25),
    ("MR", ["MR"] * 5, 8),
    ("CR", ["CR"], 2),
    ("US", ["US"], 10),
    ("PT", ["CT", "PT"], 20),
    ("DX", ["DX", "DX"], 1),
    ("MR", ["MR"] * 4, 12),
    ("CT", ["CT"], 60),
]
SURNAMES = _words(
    """
SMITH JOHNSON WILLIAMS BROWN JONES GARCIA MILLER DAVIS RODRIGUEZ MARTINEZ HERNANDEZ LOPEZ
GONZALEZ WILSON ANDERSON THOMAS TAYLOR MOORE JACKSON MARTIN LEE PEREZ THOMPSON WHITE
HARRIS SANCHEZ CLARK RAMIREZ LEWIS ROBINSON WALKER YOUNG ALLEN KING WRIGHT SCOTT TORRES
NGUYEN HILL FLORES GREEN ADAMS NELSON BAKER HALL RIVERA CAMPBELL MITCHELL CARTER ROBERTS
MULLER SCHMIDT SCHNEIDER FISCHER WEBER MEYER WAGNER BECKER SCHULZ HOFFMANN DUBOIS DURAND
LEROY MOREAU SIMON LAURENT ROSSI RUSSO FERRARI ESPOSITO BIANCHI ROMANO COLOMBO RICCI
MARINO GRECO BRUNO GALLO CONTI DEJONG JANSEN DEVRIES VANDIJK BAKKER JANSSEN VISSER SMIT
MEIJER DEBOER MULDER DEGROOT BOS VOS PETERS HENDRIKS DEKKER ANDERSEN NIELSEN HANSEN
PEDERSEN LARSEN SORENSEN RASMUSSEN JORGENSEN PETERSEN MADSEN KRISTENSEN OLSEN
"""
)
GIVEN = _words(
    """
JAMES MARY ROBERT PATRICIA JOHN JENNIFER MICHAEL LINDA DAVID ELIZABETH WILLIAM BARBARA
RICHARD SUSAN JOSEPH JESSICA THOMAS SARAH CHARLES KAREN ANNA LUCA EMMA NOAH SOPHIE LIAM
MIA PAUL CLARA HANS GRETA PIERRE CAMILLE MARCO GIULIA SVEN INGRID
"""
)
NOW = datetime.now(UTC)


# --- synthetic archive: deterministic per study index ----------------------------


@dataclass(frozen=True)
class StudyPlan:
    index: int
    patient: int
    uid: str
    profile: tuple[str, list[str], int]
    date: str
    trial: str
    site: str

    @property
    def n_instances(self) -> int:
        return len(self.profile[1]) * self.profile[2]


def plan_study(s: int) -> StudyPlan:
    rng = random.Random(s)
    day = datetime(2015, 1, 1).toordinal() + rng.randrange(11 * 365)
    return StudyPlan(
        index=s,
        patient=s // 2,  # two studies per patient
        uid=f"{UID_ROOT}.1.{10_000_000 + s}",
        profile=PROFILES[s % len(PROFILES)],
        date=datetime.fromordinal(day).strftime("%Y%m%d"),
        trial=f"T{(s % 20) + 1:02d}",
        site=f"S{(s % 7) + 1}",
    )


def patient_name(p: int) -> str:
    rng = random.Random(-p - 1)
    return f"{rng.choice(SURNAMES)}^{rng.choice(GIVEN)}"


def series_uid(study: StudyPlan, k: int) -> str:
    return f"{UID_ROOT}.2.{10_000_000 + study.index}.{100 + k}"


def sop_uid(study: StudyPlan, k: int, i: int) -> str:
    return f"{UID_ROOT}.3.{10_000_000 + study.index}.{100 + k}.{100_000 + i}"


def template_dataset(study: StudyPlan, k: int, modality: str) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = {
        "CT": "1.2.840.10008.5.1.4.1.1.2",
        "MR": "1.2.840.10008.5.1.4.1.1.4",
        "PT": "1.2.840.10008.5.1.4.1.1.128",
        "US": "1.2.840.10008.5.1.4.1.1.6.1",
    }.get(modality, "1.2.840.10008.5.1.4.1.1.1.1")
    ds.SOPInstanceUID = sop_uid(study, k, SOP_MARK)
    ds.StudyInstanceUID = study.uid
    ds.SeriesInstanceUID = series_uid(study, k)
    ds.PatientName = patient_name(study.patient)
    ds.PatientID = f"P{study.patient:07d}"
    ds.PatientBirthDate = f"{1940 + study.patient % 60}0{1 + study.patient % 9}15"
    ds.PatientSex = "FM"[study.patient % 2]
    ds.StudyDate = study.date
    ds.StudyTime = f"{8 + study.index % 10:02d}{study.index % 60:02d}00"
    ds.SeriesDate = study.date
    ds.SeriesTime = ds.StudyTime
    ds.AccessionNumber = f"A{study.index:09d}"
    ds.StudyID = str(study.index % 1000)
    ds.ReferringPhysicianName = f"{patient_name(study.index + 7_000_000)}"
    ds.StudyDescription = f"{study.profile[0]} {['BRAIN', 'CHEST', 'KNEE', 'ABDOMEN'][k % 4]}"
    ds.SeriesDescription = f"SERIES {k + 1}"
    ds.BodyPartExamined = ["HEAD", "CHEST", "KNEE", "ABDOMEN"][study.index % 4]
    ds.Modality = modality
    ds.SeriesNumber = k + 1
    ds.InstanceNumber = NUMBER_MARK
    ds.Rows = ds.Columns = 4
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = (np.arange(16, dtype=np.uint16) + study.index % 100).astype("<u2").tobytes()
    return ds


@dataclass
class SeriesTemplate:
    """One real instance of a series; the others differ in two fixed-width values."""

    data: bytes
    meta_json: bytes
    record: Any
    sop_mark: bytes
    transfer_syntax: str


def make_template(study: StudyPlan, k: int, modality: str) -> SeriesTemplate:
    parsed = parse_part10(to_bytes(template_dataset(study, k, modality)))
    attrs = dicomjson.dataset_to_json(
        parsed.dataset, parsed.study_uid, parsed.series_uid, parsed.sop_instance_uid
    )
    return SeriesTemplate(
        data=parsed.data,
        meta_json=dicomjson.dumps(attrs),
        record=extract(parsed.dataset),
        sop_mark=parsed.sop_instance_uid.encode(),
        transfer_syntax=parsed.transfer_syntax,
    )


def instance_bytes(t: SeriesTemplate, sop: str, number: int) -> bytes:
    return t.data.replace(t.sop_mark, sop.encode()).replace(
        NUMBER_MARK.encode(), f"{number:06d}".encode()
    )


def instance_meta(t: SeriesTemplate, sop: str, number: int) -> bytes:
    text = t.meta_json.replace(t.sop_mark, sop.encode()).replace(
        f"[{int(NUMBER_MARK)}]".encode(), f"[{number}]".encode()
    )
    return zlib.compress(text, 1)


def study_instances(study: StudyPlan) -> Iterator[tuple[int, str, SeriesTemplate, str, int]]:
    """(series index, modality, template, SOP UID, instance number) of every instance."""
    _, modalities, per_series = study.profile
    for k, modality in enumerate(modalities):
        t = make_template(study, k, modality)
        for i in range(1, per_series + 1):
            yield k, modality, t, sop_uid(study, k, i), i


# --- bulk loading -----------------------------------------------------------------

# Parent columns are the record's own keys (trialpacs.index.records.extract) plus these,
# so a column added to the store path is loaded too (and verify_sample compares it).
PATIENT_COLS = ("pk", "{record}", "num_studies created_at")
STUDY_COLS = (
    "pk study_uid patient_pk",
    "{record}",
    "modalities num_series num_instances created_at updated_at collection trial_id site_id",
)
SERIES_COLS = ("pk series_uid study_pk", "{record}", "num_instances created_at updated_at")
INSTANCE_COLS = (
    "pk sop_uid series_pk study_pk sop_class_uid instance_number rows columns bits_allocated "
    "number_of_frames transfer_syntax size sha256 blob_key metadata_json created_at store"
)


def _copy(cols: str | tuple[str, ...], table: str, record: dict[str, Any] | None = None) -> str:
    if isinstance(cols, tuple):
        cols = " ".join(cols).replace("{record}", " ".join(record or {}))
    return f"COPY {table} ({', '.join(cols.split())}) FROM STDIN"


def bulk_load(dsn: str, instances: int, progress: Callable[[int], None]) -> tuple[int, int]:
    """Fill the index with ``instances`` instances; returns (studies, patients)."""
    total = 0
    s = 0
    series_pk = 0
    instance_pk = 0
    patients: dict[int, int] = {}
    with psycopg.connect(dsn) as conn:
        conn.execute("SET synchronous_commit = off")
        # Children are copied before parents; the keys are consistent by construction
        # (and verify_sample checks them), so foreign-key triggers are off for the load.
        conn.execute("SET session_replication_role = replica")
        with conn.cursor() as cur:
            study_rows: list[tuple[Any, ...]] = []
            patient_rows: dict[int, list[Any]] = {}
            # One COPY at a time per connection: instances stream first, the parent
            # rows (a few per cent of the volume) are kept and copied afterwards.
            plans: list[StudyPlan] = []
            while total < instances:
                plan = plan_study(s)
                plans.append(plan)
                total += plan.n_instances
                s += 1
            with cur.copy(_copy(INSTANCE_COLS, "instances")) as inst_copy:
                series_rows: list[tuple[Any, ...]] = []
                left = instances
                for plan in plans:
                    study_pk = plan.index + 1
                    counts: dict[int, int] = {}
                    mods: set[str] = set()
                    first: SeriesTemplate | None = None
                    for k, modality, t, sop, number in study_instances(plan):
                        if left == 0:
                            break
                        left -= 1
                        first = first or t
                        if k not in counts:
                            series_pk += 1
                            counts[k] = 0
                            series_rows.append((series_pk, plan, k, t))
                        counts[k] += 1
                        mods.add(modality)
                        data = instance_bytes(t, sop, number)
                        sha = hashlib.sha256(memoryview(data)[_dataset_offset(data) :]).hexdigest()
                        instance_pk += 1
                        rec = t.record.instance
                        inst_copy.write_row(
                            (
                                instance_pk,
                                sop,
                                series_pk,
                                study_pk,
                                rec["sop_class_uid"],
                                number,
                                rec["rows"],
                                rec["columns"],
                                rec["bits_allocated"],
                                rec["number_of_frames"],
                                t.transfer_syntax,
                                len(data),
                                sha,
                                f"{plan.uid}/{series_uid(plan, k)}/{sop}.{sha[:16]}.dcm",
                                instance_meta(t, sop, number),
                                NOW,
                                None,
                            )
                        )
                        if instance_pk % 20_000 == 0:
                            progress(20_000)
                    assert first is not None
                    pat = first.record.patient
                    ppk = patients.setdefault(plan.patient, len(patients) + 1)
                    if ppk in patient_rows:
                        patient_rows[ppk][-2] += 1
                    else:
                        patient_rows[ppk] = [ppk, *pat.values(), 1, NOW]
                    st = first.record.study
                    study_rows.append(
                        (
                            study_pk,
                            plan.uid,
                            ppk,
                            *st.values(),
                            modalities_key(mods),
                            len(counts),
                            sum(counts.values()),
                            NOW,
                            NOW,
                            "published",
                            plan.trial,
                            plan.site,
                        )
                    )
                    # remember per-series counts on the row tuples
                    for idx in range(len(series_rows) - len(counts), len(series_rows)):
                        spk, p, k, t = series_rows[idx][:4]
                        series_rows[idx] = (spk, p, k, t, counts[k])
            progress(instance_pk % 20_000)
            record = make_template(plans[0], 0, plans[0].profile[1][0]).record
            with cur.copy(_copy(PATIENT_COLS, "patients", record.patient)) as copy:
                for row in patient_rows.values():
                    copy.write_row(row)
            with cur.copy(_copy(STUDY_COLS, "studies", record.study)) as copy:
                for study_row in study_rows:
                    copy.write_row(study_row)
            with cur.copy(_copy(SERIES_COLS, "series", record.series)) as copy:
                for spk, plan, k, t, n in series_rows:
                    se = t.record.series
                    copy.write_row(
                        (spk, series_uid(plan, k), plan.index + 1, *se.values(), n, NOW, NOW)
                    )
            for table in ("patients", "studies", "series", "instances"):
                cur.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'pk'), "
                    f"(SELECT max(pk) FROM {table}))"
                )
        conn.commit()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return len(plans), len(patients)


# --- sample check against the real store path ------------------------------------

SKIP = {"pk", "patient_pk", "study_pk", "series_pk", "created_at", "updated_at"}


def _rows(dsn: str, table: str, key: str, values: list[str]) -> dict[str, dict[str, Any]]:
    with psycopg.connect(dsn) as conn:
        cur = conn.execute(f"SELECT * FROM {table} WHERE {key} = ANY(%s)", (values,))
        names = [d.name for d in cur.description or []]
        return {
            row[names.index(key)]: {
                n: (bytes(v) if isinstance(v, memoryview) else v)
                for n, v in zip(names, row, strict=True)
                if n not in SKIP
            }
            for row in cur.fetchall()
        }


def verify_sample(dsn: str, studies: int, sample_patients: int = 4) -> int:
    """Store a sample through the real path into a scratch database; compare every column."""
    from trialpacs.archive import Archive
    from trialpacs.ingest.store import Placement, StoreOutcome, store_many
    from trialpacs.settings import load_settings

    rng = random.Random(1)
    last = max(1, studies // 2 - 1)  # the last study may be cut short by --instances
    patients = sorted({0, *(rng.randrange(last) for _ in range(sample_patients))})
    plans = [plan_study(s) for p in patients for s in (2 * p, 2 * p + 1) if s < studies]
    with scratch_database() as scratch, tempfile.TemporaryDirectory() as tmp:
        archive = Archive.open(load_settings(None, data_dir=Path(tmp), database_url=scratch))
        try:
            for plan in plans:
                datas = [instance_bytes(t, sop, n) for _, _, t, sop, n in study_instances(plan)]
                where = Placement(collection="published", trial_id=plan.trial, site_id=plan.site)
                for out in store_many(archive, datas, placement=where):
                    assert isinstance(out, StoreOutcome), out
        finally:
            archive.close()
        raw = scratch.replace("postgresql+psycopg://", "postgresql://")
        checked = 0
        sops = [sop for plan in plans for _, _, _, sop, _ in study_instances(plan)]
        for table, key, values in (
            ("patients", "patient_id", [f"P{p:07d}" for p in patients]),
            ("studies", "study_uid", [p.uid for p in plans]),
            ("series", "series_uid", [series_uid(p, k) for p in plans for k in range(8)]),
            ("instances", "sop_uid", sops),
        ):
            real, bulk = _rows(raw, table, key, values), _rows(dsn, table, key, values)
            if real != bulk:
                diff = next(k for k in real if real[k] != bulk.get(k))
                raise SystemExit(
                    f"bulk loader differs from the store path in {table} {diff}:\n"
                    f"  store path: {real[diff]}\n  bulk:       {bulk.get(diff)}"
                )
            checked += len(real)
    return checked


# --- databases ---------------------------------------------------------------------


class scratch_database:
    """A fresh PostgreSQL database, dropped on exit; yields its SQLAlchemy URL."""

    def __init__(self, keep: bool = False) -> None:
        self.name = f"trialpacs_bench_{os.getpid()}_{secrets.token_hex(3)}"
        self.keep = keep

    def __enter__(self) -> str:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
        return f"{base}/{self.name}"

    def __exit__(self, *exc: object) -> None:
        if self.keep:
            print(f"kept database {self.name}")
            return
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


# --- timing ---------------------------------------------------------------------------

OHIF = {"limit": "101", "fuzzymatching": "false"}
OHIF_INCLUDE = "00081030,00080060,00080090,00100030"


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    samples = sorted(samples)
    p95 = samples[min(len(samples) - 1, round(0.95 * len(samples)) - 1)]
    return statistics.median(samples), p95, samples[-1]


def measure(url: str, studies: int, runs: int) -> list[tuple[str, float, float, float, float, int]]:
    from fastapi.testclient import TestClient

    from trialpacs.access.apikeys import create_key
    from trialpacs.archive import Archive
    from trialpacs.settings import load_settings
    from trialpacs.web.app import create_app

    tmp = tempfile.mkdtemp(prefix="tp-scale-")
    archive = Archive.open(load_settings(None, data_dir=Path(tmp), database_url=url))
    admin = create_key(archive.db, "bench-admin")
    reader = create_key(archive.db, "bench-reader", grants=["reader@T07"])
    client = TestClient(create_app(archive))
    results: list[tuple[str, float, float, float, float, int]] = []
    rng = random.Random(7)

    def qido(path: str, params: dict[str, str], key: str = admin) -> Callable[[int], Any]:
        def run(i: int) -> int:
            p = {k: v.replace("{i}", str(i)) for k, v in params.items()}
            r = client.get(
                f"/dicomweb{path}",
                params=p,
                headers={"Authorization": f"Bearer {key}", "Accept": "application/dicom+json"},
            )
            assert r.status_code == 200, r.text[:300]
            return len(r.json())

        return run

    def varied(make: Callable[[int], dict[str, str]], key: str = admin) -> Callable[[int], int]:
        def run(i: int) -> int:
            return qido("/studies", make(i), key)(i)

        return run

    prefixes = ["SMI", "JOH", "MUL", "ROS", "AND", "PET", "WAG", "DEV", "NIE", "GAR"]
    infixes = ["ANDER", "ERT", "OLS", "ARTIN", "SEN", "ROS", "ILL", "ONZ"]

    def date_range(i: int) -> dict[str, str]:
        start = datetime(2015, 1, 1).toordinal() + rng.randrange(10 * 365)
        a = datetime.fromordinal(start)
        b = datetime.fromordinal(start + 30)
        return {**OHIF, "StudyDate": f"{a:%Y%m%d}-{b:%Y%m%d}", "includefield": OHIF_INCLUDE}

    cases: list[tuple[str, Callable[[int], int]]] = [
        ("OHIF study list (first page)", qido("/studies", {**OHIF, "includefield": OHIF_INCLUDE})),
        (
            "OHIF study list (page 50)",
            varied(lambda i: {**OHIF, "offset": str(5050 + i), "includefield": OHIF_INCLUDE}),
        ),
        (
            "PatientName=XXX* (prefix)",
            varied(lambda i: {**OHIF, "PatientName": prefixes[i % len(prefixes)] + "*"}),
        ),
        (
            "PatientName=*XXX* (contains)",
            varied(lambda i: {**OHIF, "PatientName": "*" + infixes[i % len(infixes)] + "*"}),
        ),
        (
            "PatientName=*XXX* (no match)",
            varied(lambda i: {**OHIF, "PatientName": f"*Q{i % 10}X*"}),
        ),
        (
            "PatientName fuzzy (word prefix)",
            varied(
                lambda i: {
                    **OHIF,
                    "fuzzymatching": "true",
                    "PatientName": prefixes[i % len(prefixes)].lower(),
                }
            ),
        ),
        ("StudyDate 31-day range", varied(date_range)),
        (
            "ModalitiesInStudy=PT / US / DX",
            varied(lambda i: {**OHIF, "ModalitiesInStudy": ["PT", "US", "DX"][i % 3]}),
        ),
        (
            "study list as reader of one trial",
            varied(lambda i: {**OHIF, "includefield": OHIF_INCLUDE}, reader),
        ),
        (
            "series of a study (QIDO)",
            lambda i: qido(f"/studies/{plan_study(rng.randrange(studies)).uid}/series", {})(i),
        ),
    ]

    def series_metadata(i: int) -> int:
        plan = plan_study(rng.randrange(studies))
        r = client.get(
            f"/dicomweb/studies/{plan.uid}/series/{series_uid(plan, 0)}/metadata",
            headers={"Authorization": f"Bearer {admin}", "Accept": "application/dicom+json"},
        )
        assert r.status_code == 200, r.text[:300]
        return len(r.json())

    cases.append(("series metadata (WADO-RS)", series_metadata))
    try:
        hits = [fn(0) for _, fn in cases]  # warm connections and plan caches
        samples: list[list[float]] = [[] for _ in cases]
        cpu: list[list[float]] = [[] for _ in cases]
        # Round robin over the queries: on a shared machine a burst of load from
        # elsewhere then lands on every query alike instead of on one of them.
        # Process CPU time per request (all threads of this process: client, app,
        # driver) is reported too: unlike wall time it does not grow with the load.
        for i in range(runs):
            for (_, fn), times, cpus in zip(cases, samples, cpu, strict=True):
                t0, c0 = time.perf_counter(), time.process_time()
                fn(i + 1)
                times.append((time.perf_counter() - t0) * 1000)
                cpus.append((time.process_time() - c0) * 1000)
        for (name, _), times, cpus, n in zip(cases, samples, cpu, hits, strict=True):
            p50, p95, worst = percentiles(times)
            results.append((name, p50, p95, worst, statistics.median(cpus), n))
    finally:
        client.close()
        archive.close()
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--instances", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=60, help="timed runs per query")
    ap.add_argument("--keep", action="store_true", help="keep the database afterwards")
    ap.add_argument("--database-url", help="reuse a database filled by an earlier --keep run")
    args = ap.parse_args()

    from trialpacs.index.db import Database
    from trialpacs.index.migrate import upgrade

    db_ctx = scratch_database(keep=args.keep)
    url = args.database_url or db_ctx.__enter__()
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    try:
        if not args.database_url:
            db = Database(url)
            upgrade(db.engine)
            db.dispose()
            t0 = time.perf_counter()
            done = [0]

            def progress(n: int) -> None:
                done[0] += n
                rate = done[0] / (time.perf_counter() - t0)
                print(f"\r  loaded {done[0]:>9,} instances ({rate:,.0f}/s)", end="", flush=True)

            studies, patients = bulk_load(dsn, args.instances, progress)
            load_s = time.perf_counter() - t0
            print(
                f"\nloaded {args.instances:,} instances, {studies:,} studies, "
                f"{patients:,} patients in {load_s:.0f} s (COPY + VACUUM ANALYZE)"
            )
            checked = verify_sample(dsn, studies)
            print(f"bulk rows identical to the store path for a sample of {checked} rows")
        with psycopg.connect(dsn) as conn:
            row = conn.execute("SELECT count(*) FROM instances").fetchone()
            studies = conn.execute("SELECT count(*) FROM studies").fetchone()[0]  # type: ignore[index]
            size = conn.execute(
                "SELECT pg_size_pretty(pg_database_size(current_database()))"
            ).fetchone()
        print(
            f"database: {row[0] if row else 0:,} instances, {studies:,} studies, "
            f"{size[0] if size else '?'}"
        )
        results = measure(url, studies, args.runs)
        print(
            f"\n| query ({row[0] if row else 0:,} instances, PostgreSQL) "
            "| p50 ms | p95 ms | max ms | app CPU ms (p50) | results |"
        )
        print("|---|---|---|---|---|---|")
        for name, p50, p95, worst, cpu, hits in results:
            print(f"| {name} | {p50:.1f} | {p95:.1f} | {worst:.1f} | {cpu:.1f} | {hits} |")
    finally:
        if not args.database_url:
            db_ctx.__exit__(None, None, None)


if __name__ == "__main__":
    main()
