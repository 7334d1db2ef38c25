"""How a live call ends from our side: a vendor failure (apologise, or hang up when the voice
itself failed) and the REST hang-up that waits for Twilio's `stop`."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from services.common.logging import get_logger

if TYPE_CHECKING:
    from .call_session import CallSession

log = get_logger(__name__)


def vendor_failure(s: CallSession, vendor: str, error: str) -> None:
    if s.hanging_up or s.ended.is_set():
        return
    log.warning("vendor_failure", vendor=vendor, error=error[:300])
    s.failure_reason = s.failure_reason or f"{vendor} failure: {error}"[:1000]
    if vendor == "tts":
        if s.current is not None and not s.current.committed:
            s.interrupt(s.current, interrupted=False)
        hangup(s)
        return
    # The voice still works: apologise and end the call rather than go silent.
    s.say_fixed("apology", s.conv.apology_line(), end_call_after=True)


def hangup(s: CallSession) -> None:
    if s.hanging_up:
        return
    s.hanging_up = True
    s.background(_do_hangup(s))


async def _do_hangup(s: CallSession) -> None:
    try:
        await asyncio.wait_for(s.telephony.hangup(s.start.call_sid), 5.0)
    except Exception as exc:
        log.warning("hangup_failed", error=repr(exc))
    try:
        await asyncio.wait_for(s.ended.wait(), s.tuning.hangup_grace_s)
    except TimeoutError:
        s.end("agent_hangup")
