"""Deadlines for connections that never finish a request (slow-loris), for every service.

uvicorn (0.55, httptools) has only `timeout_keep_alive`, and it is armed after a response and
cancelled by the next byte that arrives: a connection that sends nothing after connecting, or
sends half its headers and stalls, or drips a byte now and then, stays open for good (issue 19:
still open after 150 s idle, 60 s with half the headers; see tests/reliability/
test_slow_clients.py). `HeaderDeadlineProtocol` adds one rule: while the server waits for a
request's headers (from the moment the connection opens, and again after each response), they
must be complete within `header_timeout` seconds, or the connection is closed. A request whose
headers arrived is not timed by it (a slow app, a streamed body, a WebSocket upgraded from it:
the media stream lives for the whole call).

One subclass for every case rather than a patch per case; the deadline is a plain TimerHandle
per connection (no task), cancelled as soon as the headers are in.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from services.common.logging import get_logger
from services.common.settings import Settings

log = get_logger(__name__)


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` that closes a connection whose request headers are late."""

    header_timeout: float = 10.0
    _header_deadline: asyncio.TimerHandle | None = None

    def _arm_header_deadline(self) -> None:
        self._cancel_header_deadline()
        self._header_deadline = self.loop.call_later(self.header_timeout, self._headers_late)

    def _cancel_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_late(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            # No client address: a log line per probe is enough to see it happening.
            log.warning("http_request_headers_timeout", timeout_s=self.header_timeout)
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def on_headers_complete(self) -> None:
        self._cancel_header_deadline()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Waiting for the next request's headers again (a queued pipelined one has them).
        if not self.transport.is_closing() and not self.pipeline:
            self._arm_header_deadline()

    def handle_websocket_upgrade(self) -> None:
        self._cancel_header_deadline()  # the WebSocket protocol takes the connection over
        super().handle_websocket_upgrade()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn options every service runs with (`service_main`, the orchestrator's `__main__`)."""
    protocol = type(
        "HeaderDeadlineProtocol",
        (HeaderDeadlineProtocol,),
        {"header_timeout": settings.http_header_timeout_seconds},
    )
    return {
        "http": protocol,
        # An idle keep-alive connection after a response (uvicorn's own timer).
        "timeout_keep_alive": settings.http_keep_alive_seconds,
    }
