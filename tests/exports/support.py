"""A small trial world for export tests: published series of two sites, several
subjects and visits, identified data next to them, and real multi-slice MR."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.uid import generate_uid

from dicomfactory import make_dataset, to_bytes
from trialpacs.access.policy import Principal, parse_grant
from trialpacs.archive import Archive
from trialpacs.config import apply, load_text
from trialpacs.ingest.store import Placement, StoreOutcome, store_many
from trialpacs.settings import load_settings
from trialpacs.trials.intake import store_for_site

CONFIG = """\
version: 1
regions:
  - id: eu
  - id: us
storage_backends:
  - name: q-eu
    kind: local
    path: {tmp}/q-eu
    region: eu
    purpose: identified
{extra_backends}
profiles:
  - name: research
    extends: trial
    options: [clean-descriptors]
sites:
  - {{id: S1, name: One, region: eu, identified_backend: q-eu}}
  - {{id: S2, name: Two, region: eu, identified_backend: q-eu}}
trials:
  - id: T1
    name: Trial one
    profile: research
    deid_regions: [local, eu]
    timepoints:
      - {{id: BL, description: Baseline, modalities: [MR, CT]}}
      - {{id: W12, description: Week 12, modalities: [MR, CT]}}
    sites: [{{site: S1}}, {{site: S2}}]
  - id: T2
    name: Trial two
    profile: research
    deid_regions: [local]
    sites: [{{site: S1}}]
"""

TESTDATA = Path(os.environ.get("TRIALPACS_TESTDATA", "/work/shared/testdata"))


def corpus_files(folder: str) -> list[Path]:
    files = sorted((TESTDATA / folder).glob("*.dcm"))
    assert files, f"test data {TESTDATA / folder} is missing (set TRIALPACS_TESTDATA)"
    return files


def who(*grants: str, name: str = "alice") -> Principal:
    return Principal(name, grants=tuple(parse_grant(g) for g in grants))


DATA_MANAGER = who("data_manager@T1", name="dm")


@dataclass(frozen=True)
class SynthSeries:
    trial: str
    site: str
    subject: str
    timepoint: str
    date: str
    modality: str
    body_part: str
    description: str
    instances: int = 2


# The synthetic published world: (site, subject, visit, date, modality, body part, description)
SYNTH: tuple[SynthSeries, ...] = (
    SynthSeries("T1", "S1", "S1-0001", "BL", "20240102", "MR", "KNEE", "T1 SAG"),
    SynthSeries("T1", "S1", "S1-0001", "BL", "20240102", "MR", "KNEE", "PD FS COR"),
    SynthSeries("T1", "S1", "S1-0001", "W12", "20240326", "MR", "KNEE", "T1 SAG"),
    SynthSeries("T1", "S1", "S1-0002", "BL", "20240210", "CT", "CHEST", "LUNG 1MM"),
    SynthSeries("T1", "S1", "S1-0002", "W12", "20240505", "CT", "CHEST", "LUNG 1MM"),
    SynthSeries("T1", "S2", "S2-0001", "BL", "20240115", "MR", "KNEE", "T1 SAG", 3),
    SynthSeries("T1", "S2", "S2-0001", "W12", "20240410", "MR", "KNEE", "T2 AX"),
    SynthSeries("T2", "S1", "S1-0009", "BL", "20240101", "MR", "KNEE", "T1 SAG"),
)


def synth_instances(s: SynthSeries, number: int, salt: str = "") -> list[bytes]:
    study = generate_uid(entropy_srcs=[s.trial, s.subject, s.date, salt])
    series = generate_uid()
    out = []
    for i in range(1, s.instances + 1):
        ds = make_dataset(
            study=study,
            series=series,
            patient_id=s.subject,
            patient_name=s.subject,
            modality=s.modality,
            rows=4,
            cols=4,
            study_date=s.date,
            series_description=s.description,
            instance_number=i,
            value=number,
        )
        ds.SeriesNumber = number
        ds.BodyPartExamined = s.body_part
        ds.ClinicalTrialTimePointID = s.timepoint
        ds.PatientIdentityRemoved = "YES"
        out.append(to_bytes(ds))
    return out


def store_published(archive: Archive, datas: list[bytes], trial: str, site: str) -> None:
    for out in store_many(archive, datas, placement=Placement("published", trial, site)):
        assert isinstance(out, StoreOutcome), out


@dataclass
class World:
    archive: Archive
    tmp: Path
    identified_series: str


def build_world(tmp: Path, extra_backends: str = "", **settings: object) -> World:
    archive = Archive.open(load_settings(None, data_dir=tmp / "data", **settings))
    apply(archive, load_text(CONFIG.format(tmp=tmp, extra_backends=extra_backends)))
    for n, s in enumerate(SYNTH, 1):
        store_published(archive, synth_instances(s, n), s.trial, s.site)
    # Identified data of the same trial, site and subject: never exportable.
    ident = SynthSeries("T1", "S1", "S1-0001", "BL", "20240102", "MR", "KNEE", "T1 SAG")
    datas = synth_instances(ident, 99, salt="identified")
    for out in store_for_site(archive, datas, "T1", "S1"):
        assert isinstance(out, StoreOutcome), out
    identified_series = str(dcmread(io.BytesIO(datas[0])).SeriesInstanceUID)
    return World(archive, tmp, identified_series)
