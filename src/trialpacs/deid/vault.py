"""The key vault: the linkage between originals and pseudonyms, kept at the site.

SQLite (one file, no server) with every original value sealed by AES-GCM under
a key derived from the site secret; lookups go through keyed hashes, so the
file alone reveals neither originals nor which pseudonym belongs to whom.
Re-identification is a deliberate act: ``lookup`` needs a person and a reason,
and each one is recorded in the vault's own log.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from trialpacs.deid.keys import derive, keyed_hash
from trialpacs.errors import InvalidInput

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS links (
    kind TEXT NOT NULL,            -- subject | uid
    scope TEXT NOT NULL,           -- trial|site for subjects, '' for UIDs
    original_key BLOB NOT NULL,    -- keyed hash of the original
    pseudonym_key BLOB NOT NULL,   -- keyed hash of the pseudonym
    n INTEGER,                     -- subject number within the scope
    sealed BLOB NOT NULL,          -- nonce || AES-GCM(JSON of the linkage)
    created TEXT NOT NULL,
    PRIMARY KEY (kind, scope, original_key)
);
CREATE INDEX IF NOT EXISTS links_pseudonym ON links (pseudonym_key);
CREATE TABLE IF NOT EXISTS lookups (
    at TEXT NOT NULL, who TEXT NOT NULL, reason TEXT NOT NULL,
    query_key BLOB NOT NULL, found INTEGER NOT NULL
);
"""

_CHECK = b"trialpacs key vault v1"
FLUSH_EVERY = 500


@dataclass(frozen=True)
class Linkage:
    kind: str
    scope: str
    original: dict[str, str]
    pseudonym: str


class KeyVault:
    """Encrypted linkage store; thread-safe (one connection behind a lock)."""

    def __init__(self, path: str | os.PathLike[str], secret: bytes) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._aead = AESGCM(derive(secret, "vault-aes-gcm"))
        self._index_key = derive(secret, "vault-index")
        self._lock = threading.RLock()
        new = not self.path.exists()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        if new:
            os.chmod(self.path, 0o600)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._check_key()
        self._pending: list[tuple[object, ...]] = []
        self._known_uids: set[bytes] = set()

    # ------------------------------------------------------------ crypto

    def _key(self, value: str) -> bytes:
        return keyed_hash(self._index_key, value)[:20]

    def _seal(self, payload: dict[str, str], aad: bytes) -> bytes:
        nonce = os.urandom(12)
        data = json.dumps(payload, sort_keys=True).encode()
        return nonce + self._aead.encrypt(nonce, data, aad)

    def _open(self, sealed: bytes, aad: bytes) -> dict[str, str]:
        try:
            data = self._aead.decrypt(sealed[:12], sealed[12:], aad)
        except InvalidTag as exc:
            raise InvalidInput(
                "key vault entry does not decrypt: wrong secret or tampering"
            ) from exc
        payload: dict[str, str] = json.loads(data)
        return payload

    def _check_key(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE key='check'").fetchone()
        if row is None:
            sealed = self._seal({"check": _CHECK.decode()}, b"check")
            self._db.execute("INSERT INTO meta VALUES ('check', ?)", (sealed.hex(),))
            return
        try:
            self._open(bytes.fromhex(row[0]), b"check")
        except InvalidInput as exc:
            raise InvalidInput(
                f"the key vault {self.path} was created with another secret"
            ) from exc

    # ------------------------------------------------------------ subjects

    def subject_id(
        self, scope: str, key: bytes, details: dict[str, str], make_id: Callable[[int], str]
    ) -> str:
        """The subject's pseudonym in ``scope``, allocating the next number if new."""
        okey = keyed_hash(self._index_key, "subject:" + key.hex())[:20]
        with self._lock:
            row = self._db.execute(
                "SELECT sealed FROM links WHERE kind='subject' AND scope=? AND original_key=?",
                (scope, okey),
            ).fetchone()
            if row is not None:
                return self._open(row[0], b"subject|" + scope.encode())["pseudonym"]
            self._db.execute("BEGIN IMMEDIATE")
            try:
                (n,) = self._db.execute(
                    "SELECT COALESCE(MAX(n), 0) + 1 FROM links WHERE kind='subject' AND scope=?",
                    (scope,),
                ).fetchone()
                sid = make_id(int(n))
                payload = {**details, "pseudonym": sid, "n": str(n)}
                self._db.execute(
                    "INSERT INTO links VALUES ('subject', ?, ?, ?, ?, ?, ?)",
                    (
                        scope,
                        okey,
                        self._key("pseudonym:" + sid),
                        n,
                        self._seal(payload, b"subject|" + scope.encode()),
                        _now(),
                    ),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return sid

    # ---------------------------------------------------------------- UIDs

    def record_uid(self, original: str, new: str) -> None:
        okey = self._key("uid:" + original)
        with self._lock:
            if okey in self._known_uids:
                return
            self._known_uids.add(okey)
            payload = {"original": original, "pseudonym": new}
            self._pending.append(
                ("uid", "", okey, self._key("pseudonym:" + new), None,
                 self._seal(payload, b"uid|"), _now())
            )  # fmt: skip
            if len(self._pending) >= FLUSH_EVERY:
                self.flush()

    def flush(self) -> None:
        with self._lock:
            if not self._pending:
                return
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR IGNORE INTO links VALUES (?,?,?,?,?,?,?)", self._pending
            )
            self._db.execute("COMMIT")
            self._pending.clear()

    def close(self) -> None:
        with self._lock:
            self.flush()
            self._db.close()

    def __enter__(self) -> KeyVault:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------- verification

    def is_original_uid(self, uid: str) -> bool:
        """True when ``uid`` is an original that was replaced (it must not appear in outputs)."""
        self.flush()
        row = self._db.execute(
            "SELECT 1 FROM links WHERE kind='uid' AND original_key=?", (self._key("uid:" + uid),)
        ).fetchone()
        return row is not None

    def subjects(self) -> Iterator[Linkage]:
        """Every subject's linkage, decrypted (for verification scans)."""
        rows = self._db.execute("SELECT scope, sealed FROM links WHERE kind='subject'").fetchall()
        for scope, sealed in rows:
            payload = self._open(sealed, b"subject|" + scope.encode())
            sid = payload.pop("pseudonym")
            yield Linkage("subject", scope, payload, sid)

    # ------------------------------------------------- re-identification

    def lookup(self, pseudonym: str, *, who: str, reason: str) -> list[Linkage]:
        """Authorised re-identification; every call is logged, found or not."""
        if not who.strip() or not reason.strip():
            raise InvalidInput("re-identification needs the person asking and a reason")
        self.flush()
        qkey = self._key("pseudonym:" + pseudonym.strip())
        rows = self._db.execute(
            "SELECT kind, scope, sealed FROM links WHERE pseudonym_key=?", (qkey,)
        ).fetchall()
        out = []
        for kind, scope, sealed in rows:
            aad = b"subject|" + scope.encode() if kind == "subject" else b"uid|"
            payload = self._open(sealed, aad)
            pseudo = payload.pop("pseudonym")
            out.append(Linkage(kind, scope, payload, pseudo))
        with self._lock:
            self._db.execute(
                "INSERT INTO lookups VALUES (?, ?, ?, ?, ?)",
                (_now(), who.strip(), reason.strip(), qkey, len(out)),
            )
        return out

    def lookup_log(self) -> list[tuple[str, str, str, int]]:
        return [
            (r[0], r[1], r[2], int(r[3]))
            for r in self._db.execute("SELECT at, who, reason, found FROM lookups ORDER BY rowid")
        ]


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
