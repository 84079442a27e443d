"""Shared helpers for the trial, config and pipeline tests."""

from __future__ import annotations

from pathlib import Path

from trialpacs.archive import Archive
from trialpacs.config import apply, load_text
from trialpacs.settings import Settings


def config_yaml(tmp: Path, *, trial_ae: str = "ONCO1", site_ae: str = "ONCO1_S01") -> str:
    return f"""\
version: 1
regions:
  - id: eu-west
    description: Frankfurt
  - id: us-east
storage_backends:
  - name: q-eu
    kind: local
    path: {tmp / "q-eu"}
    region: eu-west
    purpose: identified
  - name: q-us
    kind: local
    path: {tmp / "q-us"}
    region: us-east
    purpose: identified
profiles:
  - name: onco
    extends: trial
    options: [clean-descriptors]
sites:
  - id: S01
    name: Charite
    region: eu-west
    identified_backend: q-eu
    hosts: [127.0.0.1]
    aes:
      - {{ae_title: PACS_S01, host: 127.0.0.1, port: 11113}}
  - id: S02
    name: Mayo
    region: us-east
    identified_backend: q-us
    aes:
      - {{ae_title: PACS_S02, host: 10.1.2.3, port: 104}}
trials:
  - id: ONCO1
    name: Oncology one
    sponsor: ACME Pharma
    profile: onco
    deid_regions: [local, eu-west]
    ae_title: {trial_ae}
    timepoints:
      - {{id: BL, description: Baseline, modalities: [MR], anatomy: [KNEE]}}
      - {{id: W12, description: Week 12, modalities: [MR], anatomy: [KNEE]}}
    sites:
      - {{site: S01, ae_title: {site_ae}}}
      - {{site: S02}}
roles:
  - name: s01-pacs
    members: [site-admin]
    trials: [ONCO1]
    phi_sites: [S01]
"""


def open_archive(data_dir: Path, **overrides: object) -> Archive:
    settings = Settings(data_dir=data_dir, **overrides)  # type: ignore[arg-type]
    return Archive.open(settings)


def configured(data_dir: Path, **overrides: object) -> Archive:
    archive = open_archive(data_dir, **overrides)
    apply(archive, load_text(config_yaml(data_dir)))
    return archive
