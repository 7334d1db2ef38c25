"""The media-stream WebSocket's session: Twilio's `start`, the claim, the call's `CallSession`.

A stream is served only if its URL's token was issued for the call its `start` names, at that
call's current dial (`stream_token`), its CallSid is the call's own, and no session for the call
has started before (`calls.claim_media_session`). Anything else is closed with 1008 before the
call is touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from generated.call_step import CallStep
from generated.call_step_reason import CallStepReason
from services.common.logging import bind_call_id, get_logger
from services.voice_orchestrator import calls
from services.voice_orchestrator.core import Conversation
from services.voice_orchestrator.finalize import end_without_session, persist_session_result
from services.voice_orchestrator.session import CallSession, TransportClosed
from services.voice_orchestrator.stream_token import token_matches
from services.voice_orchestrator.vendors.twilio import (
    BadFrame,
    IgnoredFrames,
    parse_message,
    parse_start,
)

if TYPE_CHECKING:
    from services.voice_orchestrator.orchestrator import Orchestrator

log = get_logger(__name__)

START_TIMEOUT_S = 10.0
# WebSocket close codes (RFC 6455): a stream we will not serve (bad or foreign `start`).
CLOSE_POLICY_VIOLATION = 1008


def _heartbeat_fn(
    batcher: calls.HeartbeatBatcher | None, call_id: uuid.UUID
) -> Callable[[], Awaitable[None]] | None:
    if batcher is None:
        return None
    return lambda: batcher.beat(call_id)


class StarletteTransport:
    """`MediaTransport` over a Starlette WebSocket."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws

    async def send_text(self, data: str) -> None:
        try:
            await self.ws.send_text(data)
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            raise TransportClosed(repr(exc)) from exc

    async def receive_text(self) -> str:
        try:
            message = await self.ws.receive()
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            raise TransportClosed(repr(exc)) from exc
        if message["type"] == "websocket.disconnect":
            raise TransportClosed("disconnected")
        text = message.get("text")
        if text is None:
            raise BadFrame("binary_frame")  # Twilio sends JSON text frames only
        return str(text)

    async def close(self, code: int = 1000) -> None:
        if self.ws.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await self.ws.close(code=code)


async def run_media_session(orch: Orchestrator, transport: StarletteTransport, token: str) -> None:
    ignored = IgnoredFrames()
    try:
        start_msg = await asyncio.wait_for(_wait_for_start(transport, ignored), START_TIMEOUT_S)
    except TimeoutError:
        ignored.summary()
        log.warning("media_stream_without_start")
        await transport.close(CLOSE_POLICY_VIOLATION)
        return
    except TransportClosed:
        ignored.summary()
        await transport.close()
        return
    ignored.summary()
    started_at = asyncio.get_running_loop().time()
    try:
        start = parse_start(start_msg)
        call_id = uuid.UUID(start.custom_parameters.get("call_id", ""))
        attempt = int(start.custom_parameters.get("attempt", ""))
    except ValueError:  # BadFrame included
        log.warning("media_stream_bad_start")
        await transport.close(CLOSE_POLICY_VIOLATION)
        return
    key = str(call_id)
    bind_call_id(key)
    if not token_matches(orch.settings, token, call_id, attempt):
        # A token (and its URL's signature) from another call's stream, or made up.
        log.warning("media_stream_token_rejected")
        await transport.close(CLOSE_POLICY_VIOLATION)
        return
    facts = await calls.load_facts(orch.sessions, orch.settings, orch.cache, call_id)
    if (
        facts is None
        or key in orch.live
        or not await calls.claim_media_session(orch.sessions, call_id, start.call_sid, attempt)
    ):
        # Unknown, ended, streaming already (the token's one use is taken), an earlier dial's
        # token, or the `start` names another call's CallSid: not served, the call untouched.
        log.warning("media_stream_rejected", known=facts is not None)
        await transport.close(CLOSE_POLICY_VIOLATION)
        return
    conversation = Conversation(facts, datetime.now(UTC))
    session = CallSession(
        call_id=key,
        start=start,
        transport=transport,
        conversation=conversation,
        stt=orch.stt(key, start.call_sid),
        tts=orch.tts(key),
        llm=orch.llm(key, conversation.prompt_version),
        telephony=orch.telephony,
        tuning=orch.tuning,
        heartbeat=_heartbeat_fn(orch.heartbeats, call_id),
        started_at=started_at,
        premade=orch.premade(key),
    )
    # Answered by now (the claim moved it to in_progress); kept once if Twilio's callback said it.
    session.steps.add(CallStep.ANSWERED, at=session.t0_wall, once_key="answered")
    orch.live[key] = session
    orch.idle.clear()
    if orch.heartbeats is not None:
        orch.heartbeats.track(call_id, session.transcript, session.steps)
    try:
        result = await session.run()
        await persist_session_result(orch.sessions, orch.blobstore, orch.settings, result)
    except Exception as exc:
        log.exception("media_session_failed", error=repr(exc))
        async with orch.sessions() as db, db.begin():
            await end_without_session(
                db,
                orch.settings,
                call_id,
                status="completed",
                outcome="failed",
                failure_reason=f"internal error: {exc!r}"[:1000],
                reason=CallStepReason.INTERNAL_ERROR,
                steps=session.steps.take(),
            )
    finally:
        orch.live.pop(key, None)
        if orch.heartbeats is not None:
            orch.heartbeats.untrack(call_id)
        if not orch.live:
            orch.idle.set()
        orch.cache.pop(key)
        if orch.relay is not None:
            orch.relay.wake()


async def _wait_for_start(transport: StarletteTransport, ignored: IgnoredFrames) -> dict[str, Any]:
    """Twilio's `start`; `connected` before it is expected, anything else is ignored."""
    while True:
        try:
            msg = parse_message(await transport.receive_text())
        except BadFrame as exc:
            ignored.note(exc)
            continue
        event = msg["event"]
        if event == "start":
            return msg
        if event == "stop":
            raise TransportClosed("stopped before start")
        if event != "connected":
            ignored.note(BadFrame("before_start", event))
