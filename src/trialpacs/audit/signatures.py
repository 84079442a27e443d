"""Electronic signatures (21 CFR 11.50, 11.70, 11.200) on reads and QC decisions.

A signature is an audit entry (so it is chained and exported with the rest)
whose manifest holds the printed name, UTC time, meaning and the hash of the
signed record; the server's Ed25519 key signs the manifest. Verification
recomputes the record's hash from the record as it is now: a signature
copied onto another record (or left on a changed one) names a different
hash and fails. Re-authentication is passed in by the adapter, because who
may sign and how passwords are checked belong to ``trialpacs.access``.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from trialpacs.audit.chain import AuditEvent, append, canonical, utc_iso
from trialpacs.audit.checkpoints import load_key, public_hex
from trialpacs.index.db import Database

Meaning = Literal["Reviewed", "Approved", "Rejected"]
MEANINGS: tuple[str, ...] = ("Reviewed", "Approved", "Rejected")


class SignatureRefused(Exception):
    """Re-authentication failed or the meaning is not one of the allowed ones."""


@dataclass(frozen=True)
class Signature:
    manifest: dict[str, Any]
    signature: str
    public_key: str
    seq: int

    def manifestation(self) -> str:
        """What 11.50 requires wherever the signature is shown or exported."""
        m = self.manifest
        return f"{m['printed_name']} — {m['meaning']} — {m['signed_at']} (UTC)"


def record_hash(record: dict[str, Any]) -> str:
    """SHA-256 of the record's canonical JSON: the thing a signature is bound to."""
    return hashlib.sha256(canonical(record)).hexdigest()


def sign(
    db: Database,
    data_dir: Path,
    *,
    username: str,
    password: str,
    meaning: str,
    record_kind: str,
    record_id: str,
    record: dict[str, Any],
    reauthenticate: Callable[[str, str], str],
    trial: str = "",
    site: str = "",
    study: str = "",
) -> Signature:
    """Sign ``record``; ``reauthenticate(user, password)`` returns the printed name or raises.

    ``trial``/``site``/``study`` only place the audit entry (so a monitor of
    the trial sees the signature); they are not part of what is signed.
    """
    if meaning not in MEANINGS:
        raise SignatureRefused(f"meaning must be one of {', '.join(MEANINGS)}")
    try:
        printed_name = reauthenticate(username, password)
    except Exception as exc:  # the refusal itself is audited below, without the reason leaking
        with db.write() as session:
            append(
                session,
                AuditEvent(
                    action="signature.sign",
                    outcome="failure",
                    actor=username,
                    object=f"{record_kind}:{record_id}",
                    reason="re-authentication failed",
                    trial=trial,
                    site=site,
                    study=study,
                ),
            )
        raise SignatureRefused("re-authentication failed") from exc
    key = load_key(data_dir)
    manifest = {
        "signer": username,
        "printed_name": printed_name or username,
        "meaning": meaning,
        "signed_at": utc_iso(),
        "record_kind": record_kind,
        "record_id": record_id,
        "record_hash": record_hash(record),
    }
    sig = base64.b64encode(key.sign(canonical(manifest))).decode()
    pub = public_hex(key.public_key())
    with db.write() as session:
        entry = append(
            session,
            AuditEvent(
                action="signature.sign",
                actor=username,
                object=f"{record_kind}:{record_id}",
                trial=trial,
                site=site,
                study=study,
                new_value=f"{manifest['printed_name']} — {meaning} — {manifest['signed_at']} (UTC)",
                detail={"manifest": manifest, "signature": sig, "public_key": pub},
            ),
        )
    return Signature(manifest=manifest, signature=sig, public_key=pub, seq=entry["seq"])


def verify_signature(
    sig: Signature,
    *,
    record_kind: str,
    record_id: str,
    record: dict[str, Any],
    trusted_public_key: str | None = None,
) -> bool:
    """True only for this record, unchanged, signed by the (trusted) server key."""
    m = sig.manifest
    if trusted_public_key is not None and sig.public_key != trusted_public_key:
        return False
    if (m.get("record_kind"), m.get("record_id")) != (record_kind, record_id):
        return False
    if m.get("record_hash") != record_hash(record):
        return False
    try:
        pub = Ed25519PublicKey.from_public_bytes(bytes.fromhex(sig.public_key))
        pub.verify(base64.b64decode(sig.signature), canonical(m))
    except (InvalidSignature, ValueError):
        return False
    return True
