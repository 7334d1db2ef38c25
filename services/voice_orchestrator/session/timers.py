"""The session's timers: the ticker that carries out CallFlow's decisions ten times a second
and watches for stalled TTS, and the heartbeat that tells the database the call is alive."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from services.common.logging import get_logger

from . import ending
from .flow import AnswerNow, HangUp, SayLine

if TYPE_CHECKING:
    from .call_session import CallSession

log = get_logger(__name__)


async def tick(s: CallSession) -> None:
    flow, policy, listener = s.flow, s.policy, s.listener
    while True:
        await asyncio.sleep(0.1)
        now = s.loop.time()
        if not flow.greeting_released and flow.greeting_due(
            now,
            speech_active=policy.user_vad or policy.stt_active,
            words_waiting=bool(policy.pending),
            last_voiced=listener.last_voiced,
        ):
            flow.greeting_released = True
            if s.current is not None:
                s.current.held = False
                s.pacer.wake.set()
        turn = s.current
        if turn is not None and s.synthesis.check_stall(turn, now, s.tuning.tts_stall_s):
            log.warning("tts_stalled", turn=turn.id)
        if s.hanging_up or turn is not None or policy.user_vad:
            continue
        action = flow.tick(
            now,
            last_activity=listener.last_activity,
            words_waiting=bool(policy.pending or policy.interrupted),
            stt_active=policy.stt_active,
        )
        if isinstance(action, HangUp):
            ending.hangup(s)
        elif isinstance(action, SayLine):
            s.say_fixed(action.kind, action.text, end_call_after=action.end_call_after)
        elif isinstance(action, AnswerNow):
            s.apply(policy.silence_timeout())


async def heartbeat(beat: Callable[[], Any] | None, every_s: float) -> None:
    if beat is None:
        return
    while True:
        try:
            await beat()
        except Exception as exc:  # a missed heartbeat is not worth ending a call
            log.warning("heartbeat_failed", error=repr(exc))
        await asyncio.sleep(every_s)
