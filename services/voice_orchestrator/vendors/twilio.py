"""Twilio: REST (place and hang up calls) on the official SDK, webhook signatures, and the
Media Streams WebSocket message shapes.

The REST client runs on the SDK's async HTTP client (aiohttp), so nothing blocks the event loop.
Its base URL comes from settings, which is how tests point it at the Twilio simulator.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from twilio.twiml.voice_response import Connect, Stream, VoiceResponse

from services.common.settings import Settings

STATUS_EVENTS = ["initiated", "ringing", "answered", "completed"]


class Telephony(Protocol):
    async def create_call(
        self, *, to: str, twiml: str, status_callback: str, time_limit: int
    ) -> str:
        """Place an outbound call; returns the CallSid."""
        ...

    async def hangup(self, call_sid: str) -> None: ...

    async def call_duration(self, call_sid: str) -> int | None:
        """Twilio's billable duration in seconds once the call is completed, else None."""
        ...

    async def aclose(self) -> None: ...


class TwilioTelephony:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._http = AsyncTwilioHttpClient(timeout=10)
        self.client = Client(
            settings.twilio_account_sid,
            settings.twilio_auth_token.get_secret_value(),
            http_client=self._http,
        )
        # The Api domain carries the base URL (https://api.twilio.com by default).
        self.client.api.base_url = settings.twilio_api_base_url.rstrip("/")

    async def create_call(
        self, *, to: str, twiml: str, status_callback: str, time_limit: int
    ) -> str:
        call = await self.client.calls.create_async(
            to=to,
            from_=self.settings.twilio_from_number,
            twiml=twiml,
            status_callback=status_callback,
            status_callback_event=STATUS_EVENTS,
            status_callback_method="POST",
            time_limit=time_limit,
        )
        return str(call.sid)

    async def hangup(self, call_sid: str) -> None:
        await self.client.calls(call_sid).update_async(status="completed")

    async def call_duration(self, call_sid: str) -> int | None:
        call = await self.client.calls(call_sid).fetch_async()
        if call.status != "completed" or call.duration in (None, ""):
            return None
        return int(call.duration)

    async def aclose(self) -> None:
        await self._http.close()


def websocket_url(public_url: str, path: str) -> str:
    """https://host/x → wss://host/x (http → ws for local runs)."""
    parts = urlsplit(public_url.rstrip("/") + path)
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, ""))


def stream_twiml(stream_url: str, call_id: str) -> str:
    """`<Connect><Stream>`: bidirectional media (a `<Start><Stream>` could not send audio)."""
    response = VoiceResponse()
    connect = Connect()
    stream = Stream(url=stream_url)
    stream.parameter(name="call_id", value=call_id)
    connect.append(stream)
    response.append(connect)
    return str(response)


class SignatureVerifier:
    """`X-Twilio-Signature` checks; the URL is the public one Twilio was given."""

    def __init__(self, settings: Settings) -> None:
        self.validator = RequestValidator(settings.twilio_auth_token.get_secret_value())
        self.public_url = settings.orchestrator_public_url.rstrip("/")

    def verify_http(self, path_and_query: str, params: dict[str, str], signature: str) -> bool:
        if not signature:
            return False
        return bool(self.validator.validate(self.public_url + path_and_query, params, signature))

    def verify_websocket(self, path_and_query: str, signature: str) -> bool:
        """Twilio signs the wss:// URL it connected to, with no body parameters."""
        if not signature:
            return False
        candidates = (
            websocket_url(self.public_url, path_and_query),
            self.public_url + path_and_query,
        )
        return any(self.validator.validate(url, {}, signature) for url in candidates)


# ---- Media Streams messages ----------------------------------------------------------------


@dataclass(frozen=True)
class StreamStart:
    stream_sid: str
    call_sid: str
    custom_parameters: dict[str, str] = field(default_factory=dict)
    media_format: dict[str, Any] = field(default_factory=dict)


def parse_start(msg: dict[str, Any]) -> StreamStart:
    start = msg.get("start") or {}
    return StreamStart(
        stream_sid=str(msg.get("streamSid") or start.get("streamSid") or ""),
        call_sid=str(start.get("callSid") or ""),
        custom_parameters={
            str(k): str(v) for k, v in (start.get("customParameters") or {}).items()
        },
        media_format=dict(start.get("mediaFormat") or {}),
    )


class MediaOut:
    """Builders for the JSON text frames we send to Twilio (text frames only)."""

    def __init__(self, stream_sid: str) -> None:
        self.stream_sid = stream_sid
        # Pre-rendered prefix: one json.dumps per frame would be wasted work at 50 frames/s.
        self._media_prefix = (
            '{"event":"media","streamSid":' + json.dumps(stream_sid) + ',"media":{"payload":"'
        )

    def media(self, mulaw: bytes) -> str:
        return self._media_prefix + base64.b64encode(mulaw).decode("ascii") + '"}}'

    def mark(self, name: str) -> str:
        return json.dumps({"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}})

    def clear(self) -> str:
        return json.dumps({"event": "clear", "streamSid": self.stream_sid})
