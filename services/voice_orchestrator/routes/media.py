"""The media-stream WebSocket route: the handshake's signature, then `run_media_session`."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from services.common.logging import get_logger
from services.voice_orchestrator.dispatch import MEDIA_PATH
from services.voice_orchestrator.media_stream import StarletteTransport, run_media_session
from services.voice_orchestrator.routes import orchestrator

log = get_logger(__name__)

router = APIRouter()


# No route for a URL without a token: its handshake is refused with 403.
@router.websocket(MEDIA_PATH + "/{token}")
async def media_stream(ws: WebSocket, token: str) -> None:
    orch = orchestrator(ws)
    path = ws.url.path + (f"?{ws.url.query}" if ws.url.query else "")
    if not orch.verifier.verify_websocket(path, ws.headers.get("x-twilio-signature", "")):
        log.warning("twilio_signature_rejected", path=ws.url.path)
        await ws.close(code=1008)  # before accept: the handshake is refused with 403
        return
    await ws.accept()
    await run_media_session(orch, StarletteTransport(ws), token)
