"""One outbound call's life on the simulated network: ringing, answer, TwiML, stream, hang-up,
and the status callbacks Twilio would post along the way."""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp
from yarl import URL

from simulators.network import PhoneNetwork
from simulators.personas import Persona
from simulators.twilio.amd import AmdRequest
from simulators.twilio.media import MediaStream
from simulators.twilio.signature import compute_signature
from simulators.twilio.twiml import (
    HangupVerb,
    PauseVerb,
    SayVerb,
    StreamVerb,
    TwimlError,
    UnsupportedVerb,
    Verb,
    parse_twiml,
)

log = logging.getLogger("simulators.twilio")

API_VERSION = "2010-04-01"
TERMINAL = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
_SIP_CODES = {"completed": "200", "busy": "486", "no-answer": "487", "failed": "503"}
_SIP_CODES["canceled"] = "487"


def rfc2822(dt: datetime | None) -> str | None:
    return None if dt is None else format_datetime(dt)


def new_call_sid() -> str:
    return "CA" + secrets.token_hex(16)


class SimCall:
    def __init__(
        self,
        network: PhoneNetwork,
        http: aiohttp.ClientSession,
        *,
        account_sid: str,
        auth_token: str,
        to: str,
        from_: str,
        persona: Persona,
        params: list[tuple[str, str]],
    ) -> None:
        self.network = network
        self.http = http
        self.sid = new_call_sid()
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.to = to
        self.from_ = from_
        self.persona = persona
        self.params = params  # the create request's form fields, as received
        first = {k: v for k, v in reversed(params)}
        self.twiml: str | None = first.get("Twiml")
        self.url: str | None = first.get("Url")
        self.method = (first.get("Method") or "POST").upper()
        self.status_callback = first.get("StatusCallback")
        self.status_callback_method = (first.get("StatusCallbackMethod") or "POST").upper()
        events: list[str] = []
        for k, v in params:
            if k == "StatusCallbackEvent":
                events.extend(v.replace(",", " ").split())
        # Twilio sends only "completed" when no events are named.
        self.status_callback_events = set(events) or {"completed"}
        self.time_limit = float(first.get("TimeLimit") or 14400)
        self.timeout = float(first.get("Timeout") or 60)
        self.amd = AmdRequest.from_params(first, network.config.twilio_amd_time_scale)
        self.answered_by: str | None = None
        self.status = "queued"
        self.created = self.updated = datetime.now(UTC)
        self.start_time: datetime | None = None
        self.end_time: datetime | None = None
        loop = asyncio.get_running_loop()
        self.t0 = loop.time()
        self.answered_at: float | None = None
        self.ended_at: float | None = None
        self.deadline: float | None = None
        self.hangup_requested = asyncio.Event()
        self.done = asyncio.Event()
        self.finished = False
        self.end_reason: str | None = None
        self.history: list[dict[str, Any]] = [{"status": "queued", "at_ms": 0}]
        self.callbacks: list[dict[str, Any]] = []
        self.twiml_fetch: dict[str, Any] | None = None
        self.executed: list[str] = []
        self.streams: list[MediaStream] = []
        self._cb_seq = 0
        self._cb_queue: asyncio.Queue[tuple[str, str, dict[str, Any]] | None] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    # -- REST view ----------------------------------------------------------------------------
    @property
    def duration(self) -> int | None:
        if self.ended_at is None:
            return None
        if self.answered_at is None:
            return 0
        return round(self.ended_at - self.answered_at)  # whole seconds, as Twilio reports

    def resource(self) -> dict[str, Any]:
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{self.sid}"
        sub = {
            name: f"{uri}/{path}.json"
            for name, path in (
                ("feedback", "Feedback"),
                ("notifications", "Notifications"),
                ("recordings", "Recordings"),
                ("streams", "Streams"),
                ("payments", "Payments"),
                ("user_defined_messages", "UserDefinedMessages"),
                ("siprec", "Siprec"),
                ("events", "Events"),
                ("feedback_summaries", "FeedbackSummary"),
                ("user_defined_message_subscriptions", "UserDefinedMessageSubscriptions"),
            )
        }
        return {
            "account_sid": self.account_sid,
            "annotation": None,
            "answered_by": self.answered_by,
            "api_version": API_VERSION,
            "caller_name": None,
            "date_created": rfc2822(self.created),
            "date_updated": rfc2822(self.updated),
            "direction": "outbound-api",
            "duration": None if self.duration is None else str(self.duration),
            "end_time": rfc2822(self.end_time),
            "forwarded_from": None,
            "from": self.from_,
            "from_formatted": self.from_,
            "group_sid": None,
            "parent_call_sid": None,
            "phone_number_sid": None,
            "price": None,
            "price_unit": "USD",
            "queue_time": "0",
            "sid": self.sid,
            "start_time": rfc2822(self.start_time),
            "status": self.status,
            "subresource_uris": sub,
            "to": self.to,
            "to_formatted": self.to,
            "trunk_sid": None,
            "uri": f"{uri}.json",
        }

    def snapshot(self) -> dict[str, Any]:
        return {
            "sid": self.sid,
            "account_sid": self.account_sid,
            "to": self.to,
            "from": self.from_,
            "persona": self.persona.name,
            "status": self.status,
            "finished": self.finished,
            "end_reason": self.end_reason,
            "duration": self.duration,
            "history": self.history,
            "request_params": [[k, v] for k, v in self.params],
            "twiml": self.twiml,
            "twiml_fetch": self.twiml_fetch,
            "executed": self.executed,
            "status_callbacks": self.callbacks,
            "answered_by": self.answered_by,
            "streams": [s.snapshot() for s in self.streams],
        }

    @property
    def stream(self) -> MediaStream | None:
        return self.streams[-1] if self.streams else None

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"call-{self.sid}")
        self._cb_task = asyncio.create_task(self._callback_worker())

    def request_hangup(self) -> None:
        self.hangup_requested.set()

    def _ms(self) -> int:
        return int((asyncio.get_running_loop().time() - self.t0) * 1000)

    def _set_status(self, status: str) -> None:
        self.status = status
        self.updated = datetime.now(UTC)
        self.history.append({"status": status, "at_ms": self._ms()})

    async def _wait_hangup(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self.hangup_requested.wait(), timeout=max(0.0, seconds))
        except TimeoutError:
            return False
        return True

    async def _run(self) -> None:
        try:
            await self._lifecycle()
        except asyncio.CancelledError:
            if self.status not in TERMINAL:
                self._finish("canceled" if self.answered_at is None else "completed", "shutdown")
            raise
        except Exception as exc:  # a simulator bug must not leave the call live forever
            log.exception("call %s crashed", self.sid)
            if self.status not in TERMINAL:
                self._finish("failed", f"simulator error: {exc}")
        finally:
            self._cb_queue.put_nowait(None)
            try:
                await asyncio.wait_for(self._cb_task, self.network.config.twilio_callback_timeout_s)
            except (TimeoutError, asyncio.CancelledError):
                self._cb_task.cancel()
            self.finished = True
            self.done.set()

    async def _lifecycle(self) -> None:
        p = self.persona
        await asyncio.sleep(0.01)
        self._callback("initiated", "initiated")
        if p.answer == "failed":
            await asyncio.sleep(p.ring_ms / 1000)
            self._finish("failed", "persona: failed")
            return
        self._set_status("ringing")
        self._callback("ringing", "ringing")
        ring_s = p.ring_ms / 1000
        if p.answer == "no-answer":
            ring_s = min(ring_s, self.timeout)
        if await self._wait_hangup(ring_s):
            self._finish("canceled", "canceled while ringing")
            return
        if p.answer in ("busy", "no-answer"):
            self._finish(p.answer, f"persona: {p.answer}")
            return
        loop = asyncio.get_running_loop()
        self.answered_at = loop.time()
        self.deadline = self.answered_at + self.time_limit
        self.start_time = datetime.now(UTC)
        self._set_status("in-progress")
        self._callback("answered", "in-progress")
        if self.amd is not None and not self.amd.is_async:
            self.executed.append("unsupported: synchronous AMD (no AnsweredBy)")
        verbs = await self._load_twiml()
        reason = await self._execute(verbs) if verbs is not None else "twiml_error"
        self._finish("completed", reason)

    async def _load_twiml(self) -> list[Verb] | None:
        text = self.twiml
        if text is None and self.url:
            params = self._base_params("in-progress")
            self.twiml_fetch = {"url": self.url, "method": self.method, "params": params}
            try:
                status, text = await self._request(self.url, self.method, params)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                self.twiml_fetch["error"] = str(exc)
                return None
            self.twiml_fetch["status"] = status
            self.twiml_fetch["body"] = text
            if status >= 400:
                return None
            self.twiml = text
        try:
            return parse_twiml(text or "")
        except TwimlError as exc:
            self.executed.append(f"error: {exc}")
            return None

    async def _execute(self, verbs: list[Verb]) -> str:
        loop = asyncio.get_running_loop()
        for verb in verbs:
            if self.hangup_requested.is_set():
                return "rest_hangup"
            remaining = (self.deadline or math.inf) - loop.time()
            if remaining <= 0:
                return "time_limit"
            if isinstance(verb, StreamVerb):
                self.executed.append("Connect/Stream")
                stream = MediaStream(self, verb)
                self.streams.append(stream)
                reason = await stream.run()
                if reason in ("persona_hangup", "rest_hangup", "time_limit", "connect_failed"):
                    return reason
            elif isinstance(verb, SayVerb):
                self.executed.append("Say")
                # Nobody listens to <Say> here: it just takes the time it would take to speak.
                if await self._wait_hangup(min(remaining, len(verb.text) * 0.065)):
                    return "rest_hangup"
            elif isinstance(verb, PauseVerb):
                self.executed.append("Pause")
                if await self._wait_hangup(min(remaining, verb.seconds)):
                    return "rest_hangup"
            elif isinstance(verb, HangupVerb):
                self.executed.append("Hangup")
                return "twiml_hangup"
            elif isinstance(verb, UnsupportedVerb):
                self.executed.append(f"unsupported: {verb.tag}")
        return "twiml_done"

    def _finish(self, status: str, reason: str) -> None:
        loop = asyncio.get_running_loop()
        self.ended_at = loop.time()
        if self.answered_at is not None:
            self.end_time = datetime.now(UTC)
        self.end_reason = reason
        self._set_status(status)
        self._callback("completed", status)

    # -- callbacks -----------------------------------------------------------------------------
    def _base_params(self, call_status: str) -> dict[str, str]:
        return {
            "AccountSid": self.account_sid,
            "ApiVersion": API_VERSION,
            "CallSid": self.sid,
            "CallStatus": call_status,
            "Called": self.to,
            "Caller": self.from_,
            "Direction": "outbound-api",
            "From": self.from_,
            "To": self.to,
        }

    def _callback(self, event: str, call_status: str) -> None:
        if not self.status_callback or event not in self.status_callback_events:
            return
        params = self._base_params(call_status)
        params["CallbackSource"] = "call-progress-events"
        params["Timestamp"] = rfc2822(datetime.now(UTC)) or ""
        params["SequenceNumber"] = str(self._cb_seq)
        self._cb_seq += 1
        if call_status in TERMINAL:
            duration = self.duration or 0
            params["CallDuration"] = str(duration)
            params["Duration"] = str(math.ceil(duration / 60))
            params["SipResponseCode"] = _SIP_CODES[call_status]
        rec: dict[str, Any] = {
            "event": event,
            "status": call_status,
            "params": params,
            "queued_at_ms": self._ms(),
        }
        self.callbacks.append(rec)
        self._cb_queue.put_nowait((self.status_callback, self.status_callback_method, rec))

    def amd_result(self, answered_by: str, duration_ms: int) -> None:
        """Async AMD's verdict: on the Call resource, and posted to AsyncAmdStatusCallback
        (in order with the status callbacks: one worker sends both)."""
        self.answered_by = answered_by
        amd = self.amd
        if amd is None or not amd.is_async or not amd.callback:
            return
        params = {
            "AccountSid": self.account_sid,
            "CallSid": self.sid,
            "AnsweredBy": answered_by,
            "MachineDetectionDuration": str(duration_ms),
        }
        rec: dict[str, Any] = {"event": "amd", "params": params, "queued_at_ms": self._ms()}
        self.callbacks.append(rec)
        self._cb_queue.put_nowait((amd.callback, amd.method, rec))

    async def stream_event(self, event: str, stream_sid: str, verb: StreamVerb) -> None:
        """<Stream statusCallback>: stream-started / stream-stopped."""
        url = verb.status_callback
        if not url:
            return
        params = {
            "AccountSid": self.account_sid,
            "CallSid": self.sid,
            "StreamSid": stream_sid,
            "StreamName": verb.name or stream_sid,
            "StreamEvent": event,
            "Timestamp": rfc2822(datetime.now(UTC)) or "",
        }
        rec: dict[str, Any] = {"event": event, "params": params, "queued_at_ms": self._ms()}
        self.callbacks.append(rec)
        self._cb_queue.put_nowait((url, verb.status_callback_method, rec))

    async def _callback_worker(self) -> None:
        # One worker per call keeps callbacks in order, like Twilio's sequence numbers.
        while (item := await self._cb_queue.get()) is not None:
            url, method, rec = item
            try:
                status, _ = await self._request(url, method, rec["params"], rec)
                rec["response_status"] = status
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                rec["error"] = str(exc) or type(exc).__name__

    async def _request(
        self,
        url: str,
        method: str,
        params: dict[str, str],
        rec: dict[str, Any] | None = None,
    ) -> tuple[int, str]:
        """A signed webhook request, as Twilio makes them (form body for POST, query for GET)."""
        headers = {
            "User-Agent": "TwilioProxy/1.1",
            "I-Twilio-Idempotency-Token": secrets.token_hex(16),
        }
        timeout = aiohttp.ClientTimeout(total=self.network.config.twilio_callback_timeout_s)
        if method == "GET":
            full = url + ("&" if "?" in url else "?") + urlencode(params)
            sig = compute_signature(self.auth_token, full)
            # encoded=True: send the URL byte for byte as signed (no re-quoting by yarl).
            req = self.http.get(
                URL(full, encoded=True),
                headers={**headers, "X-Twilio-Signature": sig},
                timeout=timeout,
            )
        else:
            sig = compute_signature(self.auth_token, url, params)
            req = self.http.post(
                URL(url, encoded=True),
                data=params,
                headers={**headers, "X-Twilio-Signature": sig},
                timeout=timeout,
            )
        if rec is not None:
            rec.update(url=url, method=method, signature=sig, sent_at_ms=self._ms())
        async with req as resp:
            return resp.status, await resp.text()
