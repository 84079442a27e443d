"""Trial subject IDs that replace PatientID and PatientName.

The same patient must get the same subject ID on every run, and two patients
must never share one. A keyed hash alone can collide in a short format like
``{site}-{n:04d}``, so numbers are handed out by a registry (the key vault,
which persists them; or an in-memory one for library use without a vault).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Protocol

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from trialpacs.deid.keys import derive, keyed_hash


class SubjectRegistry(Protocol):
    def subject_id(
        self, scope: str, key: bytes, details: dict[str, str], make_id: Callable[[int], str]
    ) -> str:
        """This subject's ID in ``scope``; a new one is ``make_id(next number)``."""
        ...


class MemoryRegistry:
    """Numbers kept for the life of the process only (no vault configured)."""

    def __init__(self) -> None:
        self._ids: dict[tuple[str, bytes], str] = {}
        self._next: dict[str, int] = {}
        self._lock = threading.Lock()

    def subject_id(
        self, scope: str, key: bytes, details: dict[str, str], make_id: Callable[[int], str]
    ) -> str:
        with self._lock:
            sid = self._ids.get((scope, key))
            if sid is None:
                n = self._next.get(scope, 0) + 1
                self._next[scope] = n
                sid = make_id(n)
                self._ids[(scope, key)] = sid
            return sid


def _text(ds: Dataset, tag: int) -> str:
    raw = ds._dict.get(tag)  # type: ignore[call-overload]
    if raw is None:
        return ""
    if isinstance(raw, RawDataElement):
        value = raw.value
        if value is None:
            return ""
        if isinstance(value, bytes) and value.isascii() and b"\\" not in value:
            return value.decode("ascii").strip("\x00 ")  # what pydicom would give, cheaper
    elem = ds.get(tag)
    if elem is None or elem.value is None:
        return ""
    return str(elem.value).strip("\x00 ")


def subject_identity(ds: Dataset) -> str:
    """What identifies the patient across files: issuer + PatientID.

    Without a PatientID, name + birth date is the best there is.
    """
    pid = _text(ds, 0x00100020)
    issuer = _text(ds, 0x00100021)
    if pid:
        return f"id\x1f{issuer}\x1f{pid}"
    name = _text(ds, 0x00100010).upper()
    return f"name\x1f{name}\x1f{_text(ds, 0x00100030)}"


def subject_hash(secret: bytes, identity: str) -> bytes:
    return keyed_hash(derive(secret, "subject"), identity)


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def format_subject_id(fmt: str, *, site: str, trial: str, n: int, digest: bytes) -> str:
    """Apply the profile's format; the result is a valid LO and PN (no ``\\`` or ``^``)."""
    value = fmt.format(site=site or "SITE", trial=trial or "TRIAL", n=n, hash=digest.hex()[:16])
    value = _UNSAFE.sub("-", value)[:64]
    return value or f"SUBJ-{n:04d}"
