"""The demo: a handful of real sample images from the pydicom-data package."""

from __future__ import annotations

import logging
from pathlib import Path

from trialpacs.access.tokens import create_token
from trialpacs.archive import Archive
from trialpacs.errors import TrialpacsError
from trialpacs.ingest.store import store_bytes

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


def load_demo(archive: Archive) -> str:
    """Store the demo images (idempotent) and return a fresh token for the demo user."""
    stored = 0
    for path in demo_paths():
        try:
            store_bytes(archive, path.read_bytes())
            stored += 1
        except TrialpacsError as exc:
            log.warning("demo file %s not loaded: %s", path.name, exc)
    log.info("demo: %d sample instances available", stored)
    return create_token(archive.db, "demo")
