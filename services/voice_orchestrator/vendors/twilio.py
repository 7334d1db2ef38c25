"""Twilio: REST (place and hang up calls) on the official SDK, webhook signatures, and the
Media Streams WebSocket message shapes.

The REST client runs on the SDK's async HTTP client (aiohttp), so nothing blocks the event loop.
Its base URL comes from settings, which is how tests point it at the Twilio simulator.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from twilio.twiml.voice_response import Connect, Stream, VoiceResponse

from services.common.logging import get_logger
from services.common.settings import Settings
from services.voice_orchestrator.media.mulaw import FRAME_BYTES

log = get_logger(__name__)

STATUS_EVENTS = ["initiated", "ringing", "answered", "completed"]


class Telephony(Protocol):
    async def create_call(
        self,
        *,
        to: str,
        twiml: str,
        status_callback: str,
        time_limit: int,
        amd_callback: str | None = None,
        amd_timeout: int = 30,
    ) -> str:
        """Place an outbound call; returns the CallSid. With `amd_callback`, Twilio runs
        answering-machine detection alongside the call and posts `AnsweredBy` there."""
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
        self,
        *,
        to: str,
        twiml: str,
        status_callback: str,
        time_limit: int,
        amd_callback: str | None = None,
        amd_timeout: int = 30,
    ) -> str:
        amd: dict[str, Any] = {}
        if amd_callback:
            # DetectMessageEnd: a machine's verdict comes after its greeting (and beep), when a
            # message can start. Async: media flows at once; the verdict is posted later.
            amd = {
                "machine_detection": "DetectMessageEnd",
                "async_amd": "true",
                "async_amd_status_callback": amd_callback,
                "async_amd_status_callback_method": "POST",
                "machine_detection_timeout": amd_timeout,
            }
        call = await self.client.calls.create_async(
            to=to,
            from_=self.settings.twilio_from_number,
            twiml=twiml,
            status_callback=status_callback,
            status_callback_event=STATUS_EVENTS,
            status_callback_method="POST",
            time_limit=time_limit,
            **amd,
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


def stream_twiml(stream_url: str, call_id: str, attempt: int) -> str:
    """`<Connect><Stream>`: bidirectional media (a `<Start><Stream>` could not send audio).

    `<Stream url>` takes no query string: per-call values are `<Parameter>`s, which Twilio
    passes back in the `start` message's `customParameters`."""
    response = VoiceResponse()
    connect = Connect()
    stream = Stream(url=stream_url)
    stream.parameter(name="call_id", value=call_id)
    stream.parameter(name="attempt", value=str(attempt))
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

# Largest WebSocket message we take from Twilio (the server refuses bigger ones with close code
# 1009). Twilio's are small: a 20 ms `media` frame is ~300 bytes, a `start` ~1 KiB plus its
# custom parameters. (A candidate for a setting, e.g. MEDIA_STREAM_MAX_FRAME_BYTES.)
MAX_FRAME_BYTES = 64 * 1024
# Every event Twilio sends on a bidirectional stream; others are ignored.
INBOUND_EVENTS = frozenset({"connected", "start", "media", "mark", "dtmf", "stop"})
_LOGGABLE_EVENT = re.compile(r"[A-Za-z_]{1,32}")


class BadFrame(ValueError):
    """An inbound frame that is not a Media Streams message we can use: it is ignored."""

    def __init__(self, reason: str, event: object = None) -> None:
        super().__init__(reason)
        self.reason = reason
        # Only a short plain name goes to the log, never arbitrary peer text.
        self.event = event if isinstance(event, str) and _LOGGABLE_EVENT.fullmatch(event) else None


class IgnoredFrames:
    """The frames ignored on one connection. The first few are logged; after that they are only
    counted (a peer sending garbage 50 times a second must not flood the log), and `summary`
    logs the totals once."""

    LOG_FIRST = 5

    def __init__(self) -> None:
        self.count = 0
        self.reasons: Counter[str] = Counter()

    def note(self, exc: BadFrame) -> None:
        self.count += 1
        self.reasons[exc.reason] += 1
        if self.count <= self.LOG_FIRST:
            extra = {"twilio_event": exc.event} if exc.event else {}
            log.warning("media_frame_ignored", reason=exc.reason, **extra)

    def summary(self) -> None:
        if self.count:
            log.warning("media_frames_ignored", count=self.count, reasons=dict(self.reasons))
            self.count = 0
            self.reasons.clear()


def parse_message(raw: str) -> dict[str, Any]:
    """One text frame as a message of a known event; `BadFrame` for anything else."""
    try:
        msg = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadFrame("not_json") from None
    if not isinstance(msg, dict):
        raise BadFrame("not_an_object")
    event = msg.get("event")
    if not isinstance(event, str) or event not in INBOUND_EVENTS:
        raise BadFrame("unknown_event", event)
    return msg


@dataclass(frozen=True)
class StreamStart:
    stream_sid: str
    call_sid: str
    custom_parameters: dict[str, str] = field(default_factory=dict)
    media_format: dict[str, Any] = field(default_factory=dict)


def parse_start(msg: dict[str, Any]) -> StreamStart:
    """The `start` message's fields; `BadFrame` if it does not have Twilio's shape."""
    start = msg.get("start")
    if not isinstance(start, dict):
        raise BadFrame("bad_start")
    params = start.get("customParameters") or {}
    media_format = start.get("mediaFormat") or {}
    if not isinstance(params, dict) or not isinstance(media_format, dict):
        raise BadFrame("bad_start")
    return StreamStart(
        stream_sid=str(msg.get("streamSid") or start.get("streamSid") or ""),
        call_sid=str(start.get("callSid") or ""),
        custom_parameters={str(k): str(v) for k, v in params.items()},
        media_format=dict(media_format),
    )


def parse_media(msg: dict[str, Any]) -> tuple[bytes, float | None] | None:
    """A `media` message's μ-law audio and Twilio's timestamp (ms since the stream started);
    None for a track other than inbound. `BadFrame` unless the payload is base64 of whole 20 ms
    frames and the timestamp, if any, a finite number >= 0."""
    media = msg.get("media")
    if not isinstance(media, dict):
        raise BadFrame("bad_media")
    if media.get("track", "inbound") != "inbound":
        return None
    payload = media.get("payload")
    if not isinstance(payload, str):
        raise BadFrame("bad_payload")
    try:
        frame = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise BadFrame("bad_base64") from None
    if not frame or len(frame) % FRAME_BYTES:
        raise BadFrame("partial_frame")
    ts = media.get("timestamp")
    if ts is None:
        return frame, None
    if isinstance(ts, bool) or not isinstance(ts, str | int | float):
        raise BadFrame("bad_timestamp")
    try:
        at = float(ts)
    except ValueError:
        raise BadFrame("bad_timestamp") from None
    if not math.isfinite(at) or at < 0:
        raise BadFrame("bad_timestamp")
    return frame, at


def parse_mark(msg: dict[str, Any]) -> str:
    mark = msg.get("mark")
    name = mark.get("name") if isinstance(mark, dict) else None
    if not isinstance(name, str):
        raise BadFrame("bad_mark")
    return name


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
