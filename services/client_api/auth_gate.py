"""The API key check for every authenticated route, before anything reads the request body.

FastAPI reads and parses a body before it runs a route's dependencies, so with the check only in
`require_api_key` an unauthenticated caller with malformed, deeply nested or oversized JSON got
a 400/413/422 that describes its input instead of the 401. This pure ASGI middleware sits
outside the body limit and answers the 401 first, for every path under the prefix that all
authenticated routes share (`app._v1_router`); /healthz, /openapi.json, the docs and the Pub/Sub
push endpoint are outside it and stay as they are. An unknown path under the prefix is a 401
too, not a 404: without the key nothing is learnt about which paths exist.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from services.client_api.auth import authenticate
from services.client_api.problems import unauthorized

AUTHENTICATED_PREFIX = "/v1"


def is_authenticated_path(path: str) -> bool:
    return path == AUTHENTICATED_PREFIX or path.startswith(AUTHENTICATED_PREFIX + "/")


class AuthGateMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_authenticated_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if authenticate(request):
            await self.app(scope, receive, send)
            return
        response = unauthorized(request)
        headers = Headers(scope=scope)
        if headers.get("content-length", "0") != "0" or "transfer-encoding" in headers:
            # The body is never read; closing is simpler for the server than draining it.
            response.headers["Connection"] = "close"
        await response(scope, receive, send)
