"""Tamper-evident audit trail (21 CFR Part 11): append, verify, checkpoints, exports."""

from trialpacs.audit.chain import (
    GENESIS,
    AuditEvent,
    Broken,
    VerifyResult,
    append,
    entry_hash,
    query,
    record,
    verify,
)

__all__ = [
    "GENESIS",
    "AuditEvent",
    "Broken",
    "VerifyResult",
    "append",
    "entry_hash",
    "query",
    "record",
    "verify",
]
