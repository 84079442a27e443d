"""Re-scan de-identified outputs for residual PHI, independently of the engine.

A second pair of eyes: it does not trust the profile that produced the files.
It reads every element (nested and private ones too, binary values decoded
as text) and looks for (1) every original value the key vault knows: patient
IDs, name parts, birth dates, replaced UIDs; (2) high-precision PHI patterns
(emails, phones, SSNs, URLs, titled names, DICOM-style names, dates in text);
(3) the de-identification marks.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset

from trialpacs.deid.freetext import CLINICAL_WORDS, RULES, terms_from_values
from trialpacs.deid.vault import KeyVault

TEXT_VRS = frozenset({"LO", "SH", "ST", "LT", "UT", "UC", "PN", "CS", "AE", "UR"})
_PATTERN_LABELS = frozenset({"EMAIL", "URL", "SSN", "PHONE", "NAME", "DATE", "ADDRESS"})
_VERIFY_RULES = tuple((label, rx) for label, rx in RULES if label in _PATTERN_LABELS)
# Elements the engine writes itself and which legitimately look like patterns.
_SKIP_TAGS = frozenset({0x00120063, 0x00120064, 0x00020013})


@dataclass(frozen=True)
class Finding:
    file: str
    element: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.element}: {self.reason}"


class Verifier:
    """Checks outputs against the vault's knowledge and PHI patterns."""

    def __init__(self, vault: KeyVault | None = None) -> None:
        self.vault = vault
        self._terms: re.Pattern[str] | None = None
        if vault is not None:
            values: list[tuple[str, str]] = []
            for link in vault.subjects():
                for key, value in link.original.items():
                    if not value:
                        continue
                    if key in ("PatientID", "OtherPatientIDs"):
                        values.append(("ID", value))
                    elif key == "PatientName":
                        values.append(("NAME", value))
                    elif key == "PatientBirthDate":
                        values.append(("DATE", value))
            terms = [t.text for t in terms_from_values(values)]
            terms = [t for t in terms if len(t) >= 3 and t.lower() not in CLINICAL_WORDS]
            if terms:
                alternation = "|".join(
                    re.escape(t) for t in sorted(set(terms), key=len, reverse=True)
                )
                self._terms = re.compile(
                    rf"(?<![A-Za-z0-9])(?:{alternation})(?![A-Za-z0-9])", re.IGNORECASE
                )

    def verify_bytes(self, data: bytes, label: str) -> list[Finding]:
        try:
            ds = dcmread(io.BytesIO(data), force=False)
        except Exception as exc:
            return [Finding(label, "-", f"not readable as DICOM: {exc}")]
        findings: list[Finding] = []
        if data[:128] != b"\x00" * 128:
            findings.append(Finding(label, "preamble", "preamble is not zeroed"))
        if str(ds.get("PatientIdentityRemoved", "")).upper() != "YES":
            findings.append(Finding(label, "(0012,0062)", "PatientIdentityRemoved is not YES"))
        meta = getattr(ds, "file_meta", None)
        if meta is not None:
            findings.extend(self._scan(meta, label, ""))
        findings.extend(self._scan(ds, label, ""))
        return findings

    def verify_path(self, path: Path) -> list[Finding]:
        return self.verify_bytes(path.read_bytes(), str(path))

    def _scan(self, ds: Dataset, label: str, prefix: str) -> Iterator[Finding]:
        for elem in ds:
            where = f"{prefix}({elem.tag.group:04X},{elem.tag.element:04X})"
            if elem.tag in _SKIP_TAGS:
                continue
            if elem.VR == "SQ":
                for i, item in enumerate(elem.value or []):
                    yield from self._scan(item, label, f"{where}[{i}].")
                continue
            if elem.tag == 0x7FE00010:
                continue
            value = elem.value
            if value is None or value == b"" or value == "":
                continue
            if elem.VR == "UI":
                if self.vault is not None:
                    for uid in str(
                        value if not isinstance(value, list) else "\\".join(value)
                    ).split("\\"):
                        uid = uid.strip("\x00 ")
                        if uid and not uid.startswith("2.25.") and self.vault.is_original_uid(uid):
                            yield Finding(label, where, f"original UID {uid} left in place")
                continue
            if elem.VR in TEXT_VRS:
                text = "\\".join(str(v) for v in value) if isinstance(value, list) else str(value)
                patterns = True
            elif isinstance(value, bytes) and (elem.tag.is_private or elem.VR == "UN"):
                text = value[:65536].decode("latin-1")
                patterns = True
            else:
                continue
            if self._terms is not None:
                m = self._terms.search(text)
                if m:
                    yield Finding(label, where, f"value known to the key vault: {m.group(0)!r}")
                    continue
            if patterns:
                for rule_label, rx in _VERIFY_RULES:
                    m = rx.search(text)
                    if m and not _benign(rule_label, elem.VR, m.group(0)):
                        yield Finding(label, where, f"looks like {rule_label}: {m.group(0)!r}")
                        break


def _benign(label: str, vr: str, text: str) -> bool:
    """Pattern hits that are structurally not PHI in that element."""
    if label == "DATE" and vr in ("DA", "DT", "TM"):
        return True
    words = re.findall(r"[A-Za-z]+", text)
    return label == "NAME" and all(w.lower() in CLINICAL_WORDS for w in words)


def iter_output_files(root: Path) -> Iterator[Path]:
    if root.is_file():
        yield root
        return
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.name.startswith("."):
            yield p
