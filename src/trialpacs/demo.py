"""The demo: a handful of real sample images from the pydicom-data package."""

from __future__ import annotations

import logging
from pathlib import Path

from trialpacs.access.tokens import create_token
from trialpacs.archive import Archive
from trialpacs.errors import TrialpacsError

log = logging.getLogger(__name__)

# Files of pydicom-data 1.0.0 that make a varied demo (CT, MR, CR, multi-frame, J2K).
DEMO_FILES = (
    "CT_small.dcm",
    "MR_small.dcm",
    "emri_small.dcm",
    "MR-SIEMENS-DICOM-WithOverlays.dcm",
    "RG3_J2KR.dcm",
    "JPEG2000.dcm",
    "US1_J2KR.dcm",
    "SC_rgb.dcm",
)


def demo_paths() -> list[Path]:
    try:
        from pydicom.data import get_testdata_file
    except ImportError as exc:  # pragma: no cover
        raise RuntimeError("pydicom is required") from exc
    paths = []
    for name in DEMO_FILES:
        found = get_testdata_file(name)
        if found:
            paths.append(Path(str(found)))
    return paths


DEMO_TRIAL = "DEMO"
DEMO_SITE = "DEMO01"


def demo_config(region: str) -> str:
    return f"""\
version: 1
sites:
  - id: {DEMO_SITE}
    name: Demo hospital
    region: {region}
trials:
  - id: {DEMO_TRIAL}
    name: Demo trial
    sponsor: trialpacs
    profile: trial
    deid_regions: [{region}]
    timepoints:
      - {{id: BL, description: Baseline}}
    sites:
      - site: {DEMO_SITE}
"""


def ensure_demo_trial(archive: Archive) -> bool:
    """Declare the demo trial unless the installation already has trials of its own."""
    from trialpacs.config.loader import load_text
    from trialpacs.config.state import apply, current

    existing = current(archive)
    if any(t.id == DEMO_TRIAL for t in existing.trials):
        return True
    if existing.trials or existing.sites:
        return False  # never overwrite someone's configuration with the demo
    region = archive.settings.region
    doc = load_text(
        demo_config(region),
        "demo-trial.yaml",
        server_region=region,
        server_ae=archive.settings.ae_title,
    )
    apply(archive, doc, "demo-trial.yaml")
    return True


def load_demo(archive: Archive) -> str:
    """Send the sample images to the demo trial's site and return a fresh token.

    They arrive identified in the site's quarantine, exactly as a hospital's
    images would; the server's pipeline de-identifies, verifies and publishes
    them once each series has settled. Idempotent.
    """
    from trialpacs.trials.intake import store_for_site

    datas = [path.read_bytes() for path in demo_paths()]
    if ensure_demo_trial(archive):
        outcomes = store_for_site(archive, datas, DEMO_TRIAL, DEMO_SITE)
    else:
        log.warning("demo: this installation has its own trials; publishing samples directly")
        from trialpacs.ingest.store import store_many

        outcomes = store_many(archive, datas)
    for path, outcome in zip(demo_paths(), outcomes, strict=True):
        if isinstance(outcome, TrialpacsError):
            log.warning("demo file %s not loaded: %s", path.name, outcome)
    return create_token(archive.db, "demo")
