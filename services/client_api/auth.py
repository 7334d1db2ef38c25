"""API key check: `Authorization: Bearer <settings.api_key>`, compared in constant time."""

from __future__ import annotations

import hmac

from starlette.requests import HTTPConnection

from services.common.settings import Settings


def api_key_matches(authorization: str | None, settings: Settings) -> bool:
    if not authorization:
        return False
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    expected = settings.api_key.get_secret_value().encode()
    # compare_digest on bytes: no early exit that would leak how much of the key matched.
    return hmac.compare_digest(token.strip().encode("utf-8", "surrogateescape"), expected)


def authenticate(conn: HTTPConnection) -> bool:
    settings: Settings = conn.app.state.settings
    return api_key_matches(conn.headers.get("authorization"), settings)
