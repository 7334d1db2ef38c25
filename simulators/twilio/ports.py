"""What a media stream needs from its call, and from the network through the call.

:class:`~simulators.twilio.media.MediaStream` is typed against these protocols, not against
``SimCall`` or ``PhoneNetwork``: the call creates its streams, so the stream must not import the
call (nor the network, which the call imports). Every member is read-only here; the stream only
reads them and calls the methods.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import aiohttp

from simulators.common.speech import Speech
from simulators.common.utterance import Utterance
from simulators.config import SimConfig
from simulators.personas import Persona
from simulators.twilio.amd import AmdRequest
from simulators.twilio.twiml import StreamVerb


class StreamNetwork(Protocol):
    """The phone network as a media stream uses it."""

    @property
    def config(self) -> SimConfig: ...

    def agent_said(self, words: str, played: bytes) -> bool: ...

    def add_utterance(self, utt: Utterance) -> None: ...

    async def speech_for_text(self, text: str) -> Speech: ...


class StreamCall(Protocol):
    """The call a media stream belongs to."""

    @property
    def sid(self) -> str: ...

    @property
    def account_sid(self) -> str: ...

    @property
    def auth_token(self) -> str: ...

    @property
    def persona(self) -> Persona: ...

    @property
    def amd(self) -> AmdRequest | None: ...

    @property
    def http(self) -> aiohttp.ClientSession: ...

    @property
    def deadline(self) -> float | None:
        """Loop time the call's time limit ends (None before the answer)."""
        ...

    @property
    def hangup_requested(self) -> asyncio.Event: ...

    @property
    def network(self) -> StreamNetwork: ...

    def amd_result(self, answered_by: str, duration_ms: int) -> None: ...

    async def stream_event(self, event: str, stream_sid: str, verb: StreamVerb) -> None:
        """<Stream statusCallback>: ``stream-started`` / ``stream-stopped``."""
        ...
