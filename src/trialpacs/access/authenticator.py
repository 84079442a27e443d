"""Turn a credential (bearer token, API key, session cookie) into a Principal.

This is the hot path of every request, so database answers are cached for
a few seconds (``CACHE_SECONDS``): a revoked session or key stops working
within that time in other processes, and at once in the process that
revoked it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import select

from trialpacs.access import apikeys, sessions
from trialpacs.access.access_tokens import Signer
from trialpacs.access.models import User
from trialpacs.access.policy import ALL_SCOPES, Principal
from trialpacs.access.users import principal_for
from trialpacs.index.db import Database
from trialpacs.settings import Settings

CACHE_SECONDS = 5.0
_T = TypeVar("_T")


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    session_id: str
    token_type: str = "Bearer"


class _Cache:
    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._data: dict[str, tuple[float, object]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, load: Callable[[], _T]) -> _T:
        now = time.monotonic()
        with self._lock:
            hit = self._data.get(key)
            if hit is not None and hit[0] > now:
                return hit[1]  # type: ignore[return-value]
        value = load()
        with self._lock:
            if len(self._data) > 10_000:
                self._data.clear()
            self._data[key] = (now + self.ttl, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


class Authenticator:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.signer = Signer(db, settings.auth_secret)
        self.timeouts = sessions.Timeouts(
            settings.session_idle_minutes, settings.session_absolute_hours
        )
        self._keys = _Cache(CACHE_SECONDS)
        self._sessions = _Cache(CACHE_SECONDS)
        self._cookies = _Cache(CACHE_SECONDS)
        if db.key_dir is not None:
            # Secrets enrolled before they were kept encrypted: seal them now.
            from trialpacs.access.mfa import seal_existing

            seal_existing(db)

    def invalidate(self) -> None:
        """Forget cached answers (after a revocation in this process)."""
        for cache in (self._keys, self._sessions, self._cookies):
            cache.clear()

    # --- checking credentials ------------------------------------------------

    def from_bearer(self, token: str) -> Principal | None:
        token = token.strip()
        if token.startswith(apikeys.KEY_PREFIX):
            return self._keys.get(
                sessions.digest(token), lambda: apikeys.principal_for_key(self.db, token)
            )
        if token.count(".") != 2 or len(token) > 8192:
            return None
        principal = self.signer.verify(token)
        if principal is None or principal.session_id is None:
            return None
        sid = principal.session_id
        active = self._sessions.get(sid, lambda: sessions.is_active(self.db, sid, self.timeouts))
        return principal if active else None

    def from_cookie(self, cookie: str) -> Principal | None:
        def load() -> Principal | None:
            live = sessions.from_cookie(self.db, cookie, self.timeouts)
            return self._principal(live.user_pk, live.session_id) if live else None

        return self._cookies.get(sessions.digest(cookie), load)

    def _principal(self, user_pk: int, session_id: str) -> Principal | None:
        with self.db.read() as session:
            user = session.get(User, user_pk)
            if user is None or user.disabled_at is not None:
                return None
            return principal_for(session, user, scopes=ALL_SCOPES, session_id=session_id)

    # --- issuing ---------------------------------------------------------------

    def sign_in(self, user_pk: int, provider: str) -> TokenPair:
        started = sessions.start(
            self.db, user_pk, kind="api", provider=provider, timeouts=self.timeouts
        )
        return self._pair(user_pk, started.session_id, started.secret)

    def browser_session(self, user_pk: int, provider: str) -> str:
        """The value of a new session cookie."""
        return sessions.start(
            self.db, user_pk, kind="browser", provider=provider, timeouts=self.timeouts
        ).secret

    def refresh(self, refresh_token: str) -> TokenPair | None:
        """New access and refresh tokens; grants are read again, so changes apply here."""
        rotated = sessions.rotate(self.db, refresh_token, self.timeouts)
        if rotated is None:
            return None
        live, new_refresh = rotated
        return self._pair(live.user_pk, live.session_id, new_refresh)

    def access_token_for_session(self, user_pk: int, session_id: str) -> str | None:
        principal = self._principal(user_pk, session_id)
        if principal is None:
            return None
        return self.signer.issue(principal, self.settings.access_token_minutes).token

    def _pair(self, user_pk: int, session_id: str, refresh_token: str) -> TokenPair:
        principal = self._principal(user_pk, session_id)
        if principal is None:
            raise PermissionError("account disabled")
        issued = self.signer.issue(principal, self.settings.access_token_minutes)
        return TokenPair(issued.token, refresh_token, issued.expires_in, session_id)

    # --- revoking --------------------------------------------------------------

    def revoke_session(self, session_id: str, actor: str = "") -> bool:
        done = sessions.revoke(self.db, session_id, actor)
        self.invalidate()
        return done

    def user_pk(self, username: str) -> int | None:
        with self.db.read() as session:
            return session.scalars(select(User.pk).where(User.username == username)).first()
