"""One line the debtor's phone speaks on a call, shared by the Twilio and Deepgram simulators."""

from __future__ import annotations

from dataclasses import dataclass

from simulators.common.speech import Speech


@dataclass(slots=True)
class Utterance:
    """One persona line as spoken on a call (times are ``loop.time()`` seconds)."""

    call_sid: str
    index: int
    text: str
    speech: Speech
    started_at: float
    ended_at: float | None = None
    connections: int = 0  # Deepgram connections that transcribed it (a reconnect: 2)
