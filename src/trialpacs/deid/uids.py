"""Replacement UIDs: ``2.25.<128-bit integer>`` from a keyed HMAC of the original.

Deterministic so that the same input gives the same output on every run and
machine that shares the secret (references between instances stay intact
without any shared state), and keyed so nobody without the secret can test a
guessed original UID against an output.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from trialpacs.deid.keys import derive, keyed_hash

# UIDs the standard defines (SOP classes, transfer syntaxes, coding schemes,
# context groups, well-known frames of reference): never identifying.
WELL_KNOWN_PREFIXES = ("1.2.840.10008.", "2.16.840.1.113883.")

# UI attributes whose value names a kind of thing, not an instance of it.
CLASS_UID_TAGS = frozenset(
    {
        0x00020002,  # Media Storage SOP Class UID
        0x00020010,  # Transfer Syntax UID
        0x00020012,  # Implementation Class UID
        0x00041510,  # Referenced SOP Class UID in File
        0x00041512,  # Referenced Transfer Syntax UID in File
        0x0004151A,  # Referenced Related General SOP Class UID in File
        0x00080016,  # SOP Class UID
        0x0008001A,  # Related General SOP Class UID
        0x0008001B,  # Original Specialized SOP Class UID
        0x0008010C,  # Coding Scheme UID
        0x0008010D,  # Context Group Extension Creator UID
        0x00080117,  # Context UID
        0x00080118,  # Mapping Resource UID
        0x00081150,  # Referenced SOP Class UID
        0x04000010,  # MAC Calculation Transfer Syntax UID
    }
)

MAX_CACHE = 200_000


def is_well_known(uid: str) -> bool:
    return uid.startswith(WELL_KNOWN_PREFIXES)


class UidMapper:
    """Maps original UIDs to new ones; safe to share between threads.

    ``on_new`` is told each mapping the first time this mapper makes it, so a
    key vault can record the linkage without the engine knowing about it.
    """

    def __init__(self, secret: bytes, on_new: Callable[[str, str], None] | None = None) -> None:
        self._key = derive(secret, "uid")
        self._cache: dict[str, str] = {}
        self._lock = threading.Lock()
        self.on_new = on_new

    def new_uid(self, original: str) -> str:
        """The replacement for ``original`` (which is kept if well known)."""
        uid = original.strip("\x00 ")
        if not uid or is_well_known(uid):
            return uid
        cached = self._cache.get(uid)
        if cached is not None:
            return cached
        digest = keyed_hash(self._key, uid)
        new = "2.25." + str(int.from_bytes(digest[:16], "big"))
        with self._lock:
            if len(self._cache) >= MAX_CACHE:
                self._cache.clear()
            self._cache[uid] = new
        if self.on_new is not None:
            self.on_new(uid, new)
        return new

    def map_value(self, value: str) -> str:
        """Map each of the backslash-separated values of a UI element."""
        if "\\" not in value:
            return self.new_uid(value)
        return "\\".join(self.new_uid(v) for v in value.split("\\"))
