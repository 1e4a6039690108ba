"""``serve``: the app under uvicorn, with the connection limits an exposed service needs.

uvicorn closes a kept-alive connection that stays idle between requests (5 s), but sets no
deadline for a request line and headers: a connection that sends nothing, or a header a byte a
second, is held for ever, and each one counts towards ``limit_concurrency``, so a few hundred
of them would turn every real request into a 503. ``GuardedH11Protocol`` closes them after
``header_timeout_s``; the app's own deadline (``body_timeout_s``) covers the body.

The protocol also closes gracefully (a "lingering close", RFC 9112 section 9.6) where the app answers before
the body is in (413, 408, 401, uvicorn's 503): closing a socket with unread data sends a TCP reset,
and the client's kernel then drops the answer unread, so a client that sends its whole body before
reading (httpx, requests) saw a connection error instead of its 413.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar, cast

import h11
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from railvision.serve.settings import Settings


class LingeringTransport:
    """A connection's transport whose ``close`` half-closes while the client is still sending its body.

    The answer goes out followed by a FIN; whatever the client still sends is read and thrown away until it
    closes too or ``linger_s`` passes. Everything else is the wrapped transport's.
    """

    def __init__(self, transport: asyncio.Transport, protocol: GuardedH11Protocol) -> None:
        self._transport, self._protocol = transport, protocol

    def __getattr__(self, name: str) -> object:
        return getattr(self._transport, name)

    def is_closing(self) -> bool:
        return self._protocol.lingering or self._transport.is_closing()

    def close(self) -> None:
        protocol, transport = self._protocol, self._transport
        if protocol.lingering or transport.is_closing():
            return
        if protocol.connected and protocol.conn.their_state is h11.SEND_BODY and transport.can_write_eof():
            protocol.lingering = True
            transport.write_eof()  # after what is buffered: the answer
            transport.resume_reading()  # flow control may have paused it; what comes is dropped
            protocol.loop.call_later(protocol.linger_s, transport.close)
        else:
            transport.close()


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose next request's headers are not in within
    ``header_timeout_s`` (counted from the connection's opening or the end of the previous answer), and
    lingering (``LingeringTransport``) where it closes one whose body is still coming."""

    header_timeout_s: ClassVar[float] = 10.0
    linger_s: ClassVar[float] = 5.0
    connected = False
    lingering = False
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.connected = True
        super().connection_made(cast(asyncio.Transport, LingeringTransport(transport, self)))
        self._arm_header_deadline()

    def data_received(self, data: bytes) -> None:
        if not self.lingering:  # the rest of a body that was answered already: thrown away
            super().data_received(data)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self.connected = False
        self._cancel_header_deadline()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        self._cancel_header_deadline()
        if not self.transport.is_closing():
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_deadline_passed)

    def _cancel_header_deadline(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_deadline_passed(self) -> None:
        """Close unless a whole request line and headers came in since the deadline was set (h11 left IDLE)."""
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def protocol(settings: Settings) -> type[GuardedH11Protocol]:
    """The protocol class with these deadlines: uvicorn makes one instance per connection from a class."""
    limits = {"header_timeout_s": settings.header_timeout_s, "linger_s": settings.linger_s}
    return type(GuardedH11Protocol.__name__, (GuardedH11Protocol,), limits)


def serve(app: FastAPI, settings: Settings, host: str, port: int, log_level: str = "info") -> None:
    """Run ``app`` until stopped; from ``settings.max_connections`` open connections on, uvicorn answers 503."""
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        http=protocol(settings),
        limit_concurrency=settings.max_connections,
    )
