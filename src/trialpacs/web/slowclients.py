"""An HTTP protocol for uvicorn that disconnects slow-loris clients.

uvicorn starts no timer while a request's headers or body arrive, so a
client that sends one header byte every few seconds (or stalls halfway
through a body) holds a connection slot for ever, and a few hundred of them
fill ``limit_concurrency``. This subclass of uvicorn's httptools protocol
gives the request line and headers a total deadline and the body an idle
limit; a client that misses either gets ``408 Request Timeout`` naming which
one, and the connection is closed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("trialpacs.http")


def refusal(message: str) -> bytes:
    """A complete 408 response whose body names the limit the client missed."""
    body = message.encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\n"
        "content-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode() + body


def guarded_protocol(header_timeout: float, body_idle_timeout: float) -> type[HttpToolsProtocol]:
    """The protocol class to give ``uvicorn.Config(http=...)``."""

    class GuardedHttpProtocol(HttpToolsProtocol):
        _head_timer: asyncio.TimerHandle | None = None
        _body_timer: asyncio.TimerHandle | None = None
        _in_body = False

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm_head()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_timers()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._head_timer is None and not self._in_body:
                # First bytes of the next request on a kept-alive connection.
                self._arm_head()
            if self._in_body:
                self._arm_body()
            super().data_received(data)

        def on_headers_complete(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
            self._in_body = True
            self._arm_body()
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._in_body = False
            if self._body_timer is not None:
                self._body_timer.cancel()
                self._body_timer = None
            super().on_message_complete()

        def _arm_head(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
            self._head_timer = self.loop.call_later(header_timeout, self._head_expired)

        def _arm_body(self) -> None:
            if self._body_timer is not None:
                self._body_timer.cancel()
            self._body_timer = self.loop.call_later(body_idle_timeout, self._body_expired)

        def _cancel_timers(self) -> None:
            for timer in (self._head_timer, self._body_timer):
                if timer is not None:
                    timer.cancel()
            self._head_timer = self._body_timer = None

        def _head_expired(self) -> None:
            self._head_timer = None
            self._refuse(
                f"request line and headers not received within {header_timeout:g} s "
                "(http_header_timeout)"
            )

        def _body_expired(self) -> None:
            self._body_timer = None
            if self._in_body:
                self._refuse(
                    f"request body stalled: no data for {body_idle_timeout:g} s "
                    "(http_body_idle_timeout)"
                )

        def _refuse(self, message: str) -> None:
            if self.transport.is_closing():
                return
            log.warning("closing slow HTTP client %s: %s", _peer(self.client), message)
            cycle = self.cycle
            if cycle is None or not cycle.response_started:
                self.transport.write(refusal(message))
            if cycle is not None:
                cycle.disconnected = True
                cycle.message_event.set()
            self.transport.close()

    return GuardedHttpProtocol


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "unknown"
