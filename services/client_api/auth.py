"""API key check: `Authorization: Bearer <key>`, compared in constant time against every
configured key (API_KEY, labelled "default", and the labelled API_KEYS).

The matching key's label is the caller's identity for the operator audit: `authenticate` stores
it on the request (`request.state.api_key_label`), `deps.ActorDep` reads it.
"""

from __future__ import annotations

import hmac

from starlette.requests import HTTPConnection

from services.common.settings import Settings, labelled_api_keys

STATE_LABEL = "api_key_label"


def api_key_label(authorization: str | None, settings: Settings) -> str | None:
    """The label of the key the header carries, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    given = token.strip().encode("utf-8", "surrogateescape")
    found: str | None = None
    # Every key is compared (no early exit): the time says nothing about which matched.
    # compare_digest on bytes: no early exit that would leak how much of a key matched.
    for label, key in labelled_api_keys(settings).items():
        if hmac.compare_digest(given, key.encode()) and found is None:
            found = label
    return found


def api_key_matches(authorization: str | None, settings: Settings) -> bool:
    return api_key_label(authorization, settings) is not None


def authenticate(conn: HTTPConnection) -> bool:
    """Check the key; on success store its label in the request's state."""
    settings: Settings = conn.app.state.settings
    label = api_key_label(conn.headers.get("authorization"), settings)
    if label is None:
        return False
    conn.scope.setdefault("state", {})[STATE_LABEL] = label
    return True


def caller_label(conn: HTTPConnection) -> str | None:
    label = conn.scope.get("state", {}).get(STATE_LABEL)
    return label if isinstance(label, str) else None
