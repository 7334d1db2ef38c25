"""Request body size limit (413 problem+json), as a pure ASGI middleware.

A declared `Content-Length` over the limit is refused before the app runs; a body sent without
one (chunked) is counted while it is read, and the read fails with `PayloadTooLarge` once past
the limit, which the problem handlers render.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.client_api.problems import PAYLOAD_TOO_LARGE, PayloadTooLarge, problem_response


class BodyLimitMiddleware:
    def __init__(
        self, app: ASGIApp, max_bytes: int, path_limits: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # Exact paths with a limit of their own (the import upload, which streams its body).
        self.path_limits = dict(path_limits or {})

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = problem_response(
            Request(scope),
            413,
            PAYLOAD_TOO_LARGE,
            f"The request body is larger than {limit} bytes.",
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.path_limits.get(scope["path"], self.max_bytes)
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._too_large(scope, receive, send, limit)
            return

        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except PayloadTooLarge:
            # Raised where no handler caught it (e.g. a route that reads the body itself).
            if started:
                raise
            await self._too_large(scope, receive, send, limit)
