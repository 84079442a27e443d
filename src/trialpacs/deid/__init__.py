"""De-identification: PS3.15 Annex E profiles, pseudonyms, dates, UIDs, free text.

A library first (the CLI and the pipeline call the same code)::

    from trialpacs.deid import Deidentifier, TrialContext, load_profile
    deid = Deidentifier(load_profile("trial"), secret, TrialContext("T1", "S01"))
    out_bytes = deid.deidentify_bytes(part10_bytes)
"""

from trialpacs.deid.engine import Deidentifier, DeidError, DeidResult, Limits, TrialContext
from trialpacs.deid.pixel_hook import (
    MaskedBox,
    NoPixelCleaner,
    PixelCleaner,
    PixelCleanError,
    PixelCleanReport,
    pixel_cleaner_for,
)
from trialpacs.deid.profile import Profile, load_profile
from trialpacs.deid.table import Option

__all__ = [
    "DeidError",
    "DeidResult",
    "Deidentifier",
    "Limits",
    "MaskedBox",
    "NoPixelCleaner",
    "Option",
    "PixelCleanError",
    "PixelCleanReport",
    "PixelCleaner",
    "Profile",
    "TrialContext",
    "load_profile",
    "pixel_cleaner_for",
]
