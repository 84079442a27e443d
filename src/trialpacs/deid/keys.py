"""Sub-keys derived from the site secret, one per purpose.

One secret per installation; each use (UIDs, subjects, date shifts, the
vault's cipher and index) gets its own HMAC-derived key so that knowing one
derived value tells nothing about another.
"""

from __future__ import annotations

import hashlib
import hmac


def derive(secret: bytes, purpose: str) -> bytes:
    if not secret:
        raise ValueError("the de-identification secret is empty")
    return hmac.new(secret, b"trialpacs-deid/" + purpose.encode(), hashlib.sha256).digest()


def keyed_hash(key: bytes, value: str) -> bytes:
    return hmac.new(key, value.encode("utf-8", "surrogateescape"), hashlib.sha256).digest()
