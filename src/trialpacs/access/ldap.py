"""LDAP / Active Directory sign-in: find the user, bind as them, read their groups.

Groups are collected through ``memberOf`` transitively (a group that is a
member of a mapped group counts), which works the same on Active Directory
and on OpenLDAP with the memberof overlay. Every failure, whether unknown
user, wrong password, disabled account or unreachable server, is the same
:class:`AuthFailed` to the caller; the log says which.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ldap3 import BASE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars

from trialpacs.access.external import map_grants, sign_in_external
from trialpacs.access.local import AuthFailed
from trialpacs.access.policy import Grant
from trialpacs.index.db import Database
from trialpacs.settings import Settings

log = logging.getLogger(__name__)
MAX_GROUP_DEPTH = 8
TIMEOUT = 10


@dataclass(frozen=True)
class LdapUser:
    dn: str
    username: str
    display_name: str
    email: str
    groups: frozenset[str]


@dataclass
class LdapDirectory:
    url: str
    user_base: str
    user_filter: str = "(uid={username})"
    bind_dn: str | None = None
    bind_password: str | None = None
    disabled_filter: str | None = None
    start_tls: bool = False
    ca_file: str | None = None
    group_roles: Mapping[str, list[str]] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, s: Settings) -> LdapDirectory:
        if not s.ldap_url:
            raise ValueError("ldap_url is not set")
        return cls(
            url=s.ldap_url,
            user_base=s.ldap_user_base,
            user_filter=s.ldap_user_filter,
            bind_dn=s.ldap_bind_dn,
            bind_password=s.ldap_bind_password,
            disabled_filter=s.ldap_disabled_filter,
            start_tls=s.ldap_start_tls,
            ca_file=s.ldap_ca_file,
            group_roles=s.ldap_group_roles,
        )

    def _server(self) -> Server:
        tls = None
        if self.url.startswith("ldaps://") or self.start_tls:
            tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=self.ca_file)
        return Server(self.url, tls=tls, connect_timeout=5, get_info=None)

    def _connect(self, user: str | None, password: str | None) -> Connection:
        conn = Connection(
            self._server(),
            user=user,
            password=password,
            receive_timeout=TIMEOUT,
            raise_exceptions=False,
            read_only=True,
        )
        if not conn.open() and conn.closed:
            raise AuthFailed()
        if self.start_tls and not conn.start_tls():
            raise AuthFailed()
        return conn

    def authenticate(self, username: str, password: str) -> LdapUser:
        """The user with groups, after a successful bind as that user."""
        if not username or not password:  # an empty password is an anonymous bind
            raise AuthFailed()
        try:
            conn = self._connect(self.bind_dn, self.bind_password)
            try:
                if self.bind_dn and not conn.bind():
                    log.error("LDAP service bind as %s failed: %s", self.bind_dn, conn.result)
                    raise AuthFailed()
                entry = self._find(conn, username)
                if self._disabled(conn, entry["dn"]):
                    log.info("LDAP sign-in refused: %s is disabled", entry["dn"])
                    raise AuthFailed()
                groups = self._groups(conn, entry)
            finally:
                conn.unbind()
            user_conn = self._connect(entry["dn"], password)
            try:
                if not user_conn.bind():
                    log.info("LDAP bind as %s refused: %s", entry["dn"], user_conn.result)
                    raise AuthFailed()
            finally:
                user_conn.unbind()
        except LDAPException as exc:
            log.error("LDAP error during sign-in of %r: %s", username, exc)
            raise AuthFailed() from None
        attrs = entry["attributes"]
        return LdapUser(
            dn=entry["dn"],
            username=username,
            display_name=_first(attrs.get("displayName")) or _first(attrs.get("cn")),
            email=_first(attrs.get("mail")),
            groups=groups,
        )

    def _find(self, conn: Connection, username: str) -> dict[str, Any]:
        flt = self.user_filter.replace("{username}", escape_filter_chars(username))
        conn.search(
            self.user_base,
            flt,
            SUBTREE,
            attributes=["cn", "displayName", "mail", "memberOf"],
            size_limit=2,
        )
        entries = [e for e in conn.response or [] if e.get("type") == "searchResEntry"]
        if len(entries) != 1:
            log.info("LDAP: %d entries for %r", len(entries), username)
            raise AuthFailed()
        return entries[0]

    def _disabled(self, conn: Connection, dn: str) -> bool:
        if not self.disabled_filter:
            return False
        conn.search(dn, self.disabled_filter, BASE, attributes=["1.1"])
        return any(e.get("type") == "searchResEntry" for e in conn.response or [])

    def _groups(self, conn: Connection, entry: dict[str, Any]) -> frozenset[str]:
        """Direct groups from memberOf, then the groups those groups belong to."""
        seen: set[str] = set()
        frontier = [str(g) for g in entry["attributes"].get("memberOf", [])]
        for _ in range(MAX_GROUP_DEPTH):
            nxt: list[str] = []
            for group in frontier:
                key = group.lower()
                if key in seen:
                    continue
                seen.add(key)
                conn.search(group, "(objectClass=*)", BASE, attributes=["memberOf"])
                for e in conn.response or []:
                    if e.get("type") == "searchResEntry":
                        nxt.extend(str(g) for g in e["attributes"].get("memberOf", []))
            if not nxt:
                break
            frontier = nxt
        return frozenset(seen)

    def grants_for(self, user: LdapUser) -> list[Grant]:
        return map_grants(user.groups, self.group_roles)

    def sign_in(self, db: Database, username: str, password: str) -> int:
        user = self.authenticate(username, password)
        return sign_in_external(
            db,
            "ldap",
            username=user.username,
            external_id=user.dn.lower(),
            grants=self.grants_for(user),
            display_name=user.display_name,
            email=user.email,
        )


def _first(value: Any) -> str:
    if isinstance(value, list):
        return str(value[0]) if value else ""
    return str(value or "")
