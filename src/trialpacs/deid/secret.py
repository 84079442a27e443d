"""Where the per-installation secret and key vault live, and creating them.

Default: ``$TRIALPACS_DATA_DIR`` or ``~/.local/share/trialpacs``; the secret is
``deid-secret`` (32 random bytes, hex, mode 0600) and the vault
``deid-vault.sqlite`` beside it. Neither may ever sit inside an output folder.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from trialpacs.errors import InvalidInput

SECRET_NAME = "deid-secret"
VAULT_NAME = "deid-vault.sqlite"


def data_dir() -> Path:
    env = os.environ.get("TRIALPACS_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".local" / "share" / "trialpacs"


def default_secret_path() -> Path:
    return data_dir() / SECRET_NAME


def default_vault_path() -> Path:
    return data_dir() / VAULT_NAME


def load_or_create_secret(path: Path | None = None) -> bytes:
    """Read the secret, creating it on first use (atomically, owner-only)."""
    path = path or default_secret_path()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        value = secrets.token_hex(32).encode() + b"\n"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first; read theirs
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(value)
                fh.flush()
                os.fsync(fh.fileno())
    data = path.read_bytes().strip()
    if len(data) < 16:
        raise InvalidInput(f"the secret in {path} is too short (at least 16 bytes)")
    return data


def ensure_outside(out: Path, *paths: Path) -> None:
    """Refuse an output folder that contains (or is) the secret or the vault."""
    o = out.resolve()
    for p in paths:
        r = p.resolve()
        if r == o or o in r.parents:
            raise InvalidInput(
                f"{p} is inside the output folder {out}: the secret and the key vault "
                "must never be written where de-identified data goes"
            )
