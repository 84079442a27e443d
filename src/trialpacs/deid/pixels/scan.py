"""Decide, per instance, whether OCR runs.

OCR costs about half a second per 512x512 frame on two cores, so a 500-slice
CT would take minutes; scanning is done where burned-in text is likely. The
decision always comes with a reason that ends up in the report, so that a
reviewer can see why an image was or was not looked at.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pydicom.dataset import Dataset

__all__ = ["DEFAULT_RISK_MODALITIES", "ScanDecision", "ScanRules"]

DEFAULT_RISK_MODALITIES = frozenset(
    {"US", "SC", "OT", "XA", "RF", "CR", "DX", "ES", "XC", "GM", "DOC"}
)
SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"


@dataclass(frozen=True)
class ScanDecision:
    scan: bool
    reason: str


@dataclass(frozen=True)
class ScanRules:
    """When to scan.

    ``mode``: ``"risk"`` (default) scans the risky modalities, secondary
    captures, BurnedInAnnotation=YES and, when ``scan_unknown_burned_in``,
    instances that do not say whether they carry burned-in text and are not
    cross-sectional; ``"always"`` scans everything; ``"never"`` relies on
    layout rules only.
    """

    mode: str = "risk"
    modalities: frozenset[str] = DEFAULT_RISK_MODALITIES
    scan_secondary_captures: bool = True
    scan_derived_secondary: bool = False
    skip_modalities: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_config(
        cls,
        *,
        mode: str = "risk",
        modalities: Iterable[str] | None = None,
        add_modalities: Iterable[str] = (),
        skip_modalities: Iterable[str] = (),
        scan_derived_secondary: bool = False,
    ) -> ScanRules:
        if mode not in ("risk", "always", "never"):
            raise ValueError(f"scan mode must be risk, always or never, not {mode!r}")
        base = (
            frozenset(m.upper() for m in modalities)
            if modalities is not None
            else (DEFAULT_RISK_MODALITIES)
        )
        return cls(
            mode=mode,
            modalities=base | {m.upper() for m in add_modalities},
            skip_modalities=frozenset(m.upper() for m in skip_modalities),
            scan_derived_secondary=scan_derived_secondary,
        )

    def decide(self, ds: Dataset) -> ScanDecision:
        modality = str(ds.get("Modality", "")).upper()
        burned = str(ds.get("BurnedInAnnotation", "")).upper()
        sop_class = str(ds.get("SOPClassUID", ""))
        if self.mode == "always":
            return ScanDecision(True, "scan mode always")
        if self.mode == "never":
            return ScanDecision(False, "scan mode never (layout rules only)")
        if burned == "YES":
            return ScanDecision(True, "BurnedInAnnotation=YES")
        if modality in self.skip_modalities:
            return ScanDecision(False, f"modality {modality} skipped by configuration")
        if modality in self.modalities:
            return ScanDecision(True, f"modality {modality} is at risk of burned-in text")
        if self.scan_secondary_captures and sop_class.startswith(SECONDARY_CAPTURE_PREFIX):
            return ScanDecision(True, "secondary capture SOP class")
        if self.scan_derived_secondary:
            image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
            if "SECONDARY" in image_type:
                return ScanDecision(True, "ImageType SECONDARY")
        detail = f"BurnedInAnnotation={burned}" if burned else "BurnedInAnnotation absent"
        return ScanDecision(False, f"modality {modality or '?'} not at risk, {detail}")
