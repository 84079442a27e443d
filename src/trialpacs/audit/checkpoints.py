"""Signed checkpoints: an Ed25519 signature over (seq, hash, time) of the chain head.

A checkpoint exported off the server pins the chain: even someone able to
rewrite the whole table (and recompute every hash) cannot match a signature
made before, without the private key, which lives only in the data directory.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select

from trialpacs.audit.chain import AuditEvent, append, canonical, utc_iso
from trialpacs.audit.models import AuditChainHead, AuditCheckpoint, AuditEntry
from trialpacs.index.db import Database

KEY_FILE = "audit-signing.key"


def load_key(data_dir: Path) -> Ed25519PrivateKey:
    """Read the key, or create it 0600 (O_EXCL, so two processes never make two keys)."""
    path = data_dir / KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 private key") from None
        return key
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
        fh.flush()
        os.fsync(fh.fileno())
    return key


def public_hex(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def _message(seq: int, hash_: str, at: str) -> bytes:
    return canonical({"seq": seq, "hash": hash_, "at": at})


def checkpoint(db: Database, data_dir: Path) -> dict[str, Any]:
    """Sign the current head; the checkpoint itself is an audit entry too."""
    key = load_key(data_dir)
    with db.write() as session:
        append(session, AuditEvent(action="audit.checkpoint", actor="system"))
        head = session.get(AuditChainHead, 1)
        assert head is not None
        at = utc_iso()
        sig = key.sign(_message(head.seq, head.hash, at))
        row = AuditCheckpoint(
            seq=head.seq,
            hash=head.hash,
            at=at,
            public_key=public_hex(key.public_key()),
            signature=base64.b64encode(sig).decode(),
        )
        session.add(row)
        session.flush()
        return _cp(row)


def _cp(row: AuditCheckpoint) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "hash": row.hash,
        "at": row.at,
        "public_key": row.public_key,
        "signature": row.signature,
    }


def export(db: Database) -> list[dict[str, Any]]:
    with db.read() as session:
        return [
            _cp(r) for r in session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.seq))
        ]


def check(db: Database, trusted_public_key: str | None = None) -> list[str]:
    """Problems with the stored checkpoints (bad signature, or the chain no longer matches)."""
    problems: list[str] = []
    with db.read() as session:
        for row in session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.seq)):
            if trusted_public_key and row.public_key != trusted_public_key:
                problems.append(f"checkpoint at entry {row.seq}: signed by an unknown key")
                continue
            try:
                pub = Ed25519PublicKey.from_public_bytes(bytes.fromhex(row.public_key))
                pub.verify(base64.b64decode(row.signature), _message(row.seq, row.hash, row.at))
            except (InvalidSignature, ValueError):
                problems.append(f"checkpoint at entry {row.seq}: signature invalid")
                continue
            entry = session.get(AuditEntry, row.seq)
            if entry is None or entry.hash != row.hash:
                problems.append(
                    f"checkpoint at entry {row.seq}: the chain no longer has the "
                    "signed hash (rewritten)"
                )
    return problems


def dumps(checkpoints: list[dict[str, Any]]) -> str:
    return json.dumps(checkpoints, indent=2)
