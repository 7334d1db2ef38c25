"""The orchestrator's HTTP and WebSocket routes, one module per concern; app.py includes them.

- `health`: `GET /healthz`
- `status`: Twilio's signed status callbacks (`on_status` is also the reconciler's)
- `media`: the `/media-stream/{token}` WebSocket (the session itself is media_stream.py)

Twilio's AMD callback is `amd.py`'s route.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import HTTPConnection

if TYPE_CHECKING:
    from services.voice_orchestrator.orchestrator import Orchestrator


def orchestrator(conn: HTTPConnection) -> Orchestrator:
    """The app's `Orchestrator` (built in the lifespan, after the routes)."""
    orch: Orchestrator = conn.app.state.orch
    return orch
