"""The table of known remote application entities.

A DICOM association carries no credentials, only the AE title the caller
claims; pairing that title with the host it must come from is the minimum
that keeps an arbitrary machine on the hospital network from pushing into or
pulling from a trial archive. The same table says where C-MOVE sends and
where storage commitment reports go, so a caller can never direct us to an
address of its choosing.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass

from sqlalchemy import delete, select

from trialpacs.errors import Conflict, InvalidInput, NotFound
from trialpacs.index.db import Database
from trialpacs.index.models import RemoteAE

_AE_RE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # default repertoire, no backslash


@dataclass(frozen=True, slots=True)
class KnownAE:
    ae_title: str
    host: str
    port: int
    site: str | None = None


def normalize_title(title: str) -> str:
    """AE titles are compared without padding, as peers pad them differently."""
    cleaned = title.strip()
    if not cleaned or not _AE_RE.match(cleaned):
        raise InvalidInput(
            f"invalid AE title {title!r}: 1-16 printable ASCII characters, no backslash"
        )
    return cleaned


def parse_address(spec: str) -> tuple[str, str, int]:
    """``AE@host:port`` as used by ``trialpacs send`` and ``trialpacs echo``."""
    title, sep, rest = spec.rpartition("@")
    host, colon, port = rest.rpartition(":")
    if not sep or not colon or not host:
        raise InvalidInput(f"expected AE@host:port, got {spec!r}")
    return normalize_title(title), host.strip("[]"), _port(port)


def _port(value: str | int) -> int:
    try:
        port = int(value)
    except ValueError:
        raise InvalidInput(f"port must be a number, got {value!r}") from None
    if not 0 < port < 65536:
        raise InvalidInput(f"port {port} is out of range 1-65535")
    return port


def add(db: Database, title: str, host: str, port: int, site: str | None = None) -> KnownAE:
    title = normalize_title(title)
    port = _port(port)
    if not host or any(c.isspace() for c in host):
        raise InvalidInput(f"invalid host {host!r}")
    with db.write() as session:
        if session.scalar(select(RemoteAE).where(RemoteAE.ae_title == title)) is not None:
            raise Conflict(f"AE title {title} is already known; remove it first")
        session.add(RemoteAE(ae_title=title, host=host, port=port, site=site))
    return KnownAE(title, host, port, site)


def remove(db: Database, title: str) -> None:
    title = normalize_title(title)
    with db.write() as session:
        result = session.execute(delete(RemoteAE).where(RemoteAE.ae_title == title))
        if not result.rowcount:  # type: ignore[attr-defined]
            raise NotFound(f"no known AE titled {title}")


def list_all(db: Database) -> list[KnownAE]:
    with db.read() as session:
        rows = session.scalars(select(RemoteAE).order_by(RemoteAE.ae_title)).all()
        return [KnownAE(r.ae_title, r.host, r.port, r.site) for r in rows]


def find(db: Database, title: str) -> KnownAE | None:
    title = title.strip()
    with db.read() as session:
        row = session.scalar(select(RemoteAE).where(RemoteAE.ae_title == title))
        return None if row is None else KnownAE(row.ae_title, row.host, row.port, row.site)


def host_matches(configured: str, peer_ip: str) -> bool:
    """True when ``peer_ip`` is the configured host (an address or a resolvable name)."""
    try:
        peer = ipaddress.ip_address(peer_ip)
    except ValueError:
        return False
    for candidate in _addresses(configured):
        try:
            if ipaddress.ip_address(candidate) == peer:
                return True
        except ValueError:
            continue
    return False


def _addresses(host: str) -> set[str]:
    try:
        ipaddress.ip_address(host)
        return {host}
    except ValueError:
        pass
    try:
        return {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except OSError:
        return set()
