"""ElevenLabs text-to-speech WebSockets: ``stream-input`` and ``multi-stream-input``.

Text is buffered per context and generated when the buffer reaches the ``chunk_length_schedule``
(default 120/160/250/290 characters), on ``flush``, on ``try_trigger_generation`` (50+ chars), at
sentence ends with ``auto_mode=true``, and at the end of input. Each generation's first audio
message comes ``ttfb`` after the trigger; its audio follows in ``chunk_ms`` messages generated
``speed`` times faster than real time, each with the character alignment of that chunk (times
relative to the chunk, as documented). ``close_context`` drops the text not yet flushed, lets the
flushed text finish and then answers ``isFinal``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from aiohttp import WSCloseCode, WSMsgType, web

from simulators.common.audio import SAMPLE_RATE, resample, ulaw_decode
from simulators.common.speech import Speech
from simulators.faults import FaultRule
from simulators.network import NETWORK_KEY, PhoneNetwork

DEFAULT_SCHEDULE = (120, 160, 250, 290)
MAX_CONTEXTS = 5
TRY_TRIGGER_CHARS = 50
_SENTENCE_END = re.compile(r"[.!?…](?:\s|$)")
_PCM_RATES = {"pcm_8000": 8000, "pcm_16000": 16000, "pcm_22050": 22050, "pcm_24000": 24000}
_PCM_RATES["pcm_44100"] = 44100


@dataclass(slots=True)
class ContextRecord:
    context_id: str
    characters: int = 0  # characters of text received (whitespace-only messages excluded)
    characters_generated: int = 0
    text: str = ""
    messages: int = 0
    flushes: int = 0
    generations: list[str] = field(default_factory=list)
    audio_messages: int = 0
    audio_bytes: int = 0
    closed: bool = False
    closed_by: str | None = None

    def snapshot(self) -> dict[str, Any]:
        return {
            "context_id": self.context_id,
            "characters": self.characters,
            "characters_generated": self.characters_generated,
            "text": self.text,
            "messages": self.messages,
            "flushes": self.flushes,
            "generations": self.generations,
            "audio_messages": self.audio_messages,
            "audio_bytes": self.audio_bytes,
            "closed": self.closed,
            "closed_by": self.closed_by,
        }


@dataclass(slots=True)
class ConnectionRecord:
    id: str
    endpoint: str
    voice_id: str
    query: dict[str, str]
    opened_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    closed_at: datetime | None = None
    close_code: int | None = None
    error: str | None = None
    fault: int | None = None  # the /_sim/faults rule that dropped this connection
    contexts: dict[str, ContextRecord] = field(default_factory=dict)

    def snapshot(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "endpoint": self.endpoint,
            "voice_id": self.voice_id,
            "query": self.query,
            "opened_at": self.opened_at.isoformat(),
            "closed_at": self.closed_at.isoformat() if self.closed_at else None,
            "close_code": self.close_code,
            "error": self.error,
            "fault": self.fault,
            "characters": sum(c.characters for c in self.contexts.values()),
            "contexts": [c.snapshot() for c in self.contexts.values()],
        }


class _Context:
    def __init__(self, conn: _Connection, context_id: str, schedule: tuple[int, ...]) -> None:
        self.conn = conn
        self.id = context_id
        self.schedule = schedule
        self.buffer = ""
        self.generated = 0
        self.jobs: asyncio.Queue[tuple[str, str, float]] = asyncio.Queue()
        self.record = conn.record.contexts.setdefault(context_id, ContextRecord(context_id))
        self.worker = asyncio.create_task(self._work())

    def add_text(self, text: str, flush: bool, try_trigger: bool) -> None:
        if text.strip():
            self.record.characters += len(text)
            self.record.text += text
        self.buffer += text
        if flush:
            self.record.flushes += 1
            self.generate_all()
            return
        if self.conn.auto_mode:
            while (m := _SENTENCE_END.search(self.buffer)) is not None:
                self._generate(m.end())
            return
        threshold = self.schedule[min(self.generated, len(self.schedule) - 1)]
        if len(self.buffer.strip()) >= threshold or (
            try_trigger and len(self.buffer.strip()) >= TRY_TRIGGER_CHARS
        ):
            cut = self.buffer.rfind(" ") + 1 or len(self.buffer)  # keep a partial word
            self._generate(cut)

    def _generate(self, upto: int) -> None:
        text, self.buffer = self.buffer[:upto], self.buffer[upto:]
        if text.strip():
            self.generated += 1
            self.record.generations.append(text.strip())
            self.record.characters_generated += len(text.strip())
            self.jobs.put_nowait(("gen", text.strip(), asyncio.get_running_loop().time()))

    def generate_all(self) -> None:
        self._generate(len(self.buffer))

    def finish(self, closed_by: str) -> None:
        """End of this context: send ``isFinal`` after the queued audio."""
        self.record.closed_by = self.record.closed_by or closed_by
        self.jobs.put_nowait(("final", "", 0.0))

    def close(self) -> None:
        """``close_context``: drop text not yet flushed; what was flushed is still generated
        and sent (filter audio by ``contextId`` after a barge-in), then ``isFinal``."""
        self.buffer = ""
        self.finish("close_context")

    async def _work(self) -> None:
        conn = self.conn
        loop = asyncio.get_running_loop()
        while True:
            kind, text, triggered = await self.jobs.get()
            if kind == "final":
                await conn.send_final(self)
                self.record.closed = True
                return
            synth = asyncio.create_task(conn.network.synth.synth(text, "agent"))
            ttfb = conn.network.jittered("elevenlabs", conn.ttfb, conn.ttfb_sigma)
            await asyncio.sleep(max(0.0, triggered + ttfb - loop.time()))
            speech = await synth
            await self._stream(speech)

    async def _stream(self, speech: Speech) -> None:
        conn = self.conn
        conn.network.note_agent_speech(speech)  # the phone may need to know what was said
        chunk_bytes = max(160, conn.chunk_ms * SAMPLE_RATE // 1000)
        audio = speech.audio
        for k, pos in enumerate(range(0, len(audio), chunk_bytes)):
            if k:
                await asyncio.sleep(conn.chunk_ms / 1000 / conn.speed)
            piece = audio[pos : pos + chunk_bytes]
            t0 = pos * 1000 // SAMPLE_RATE
            last = pos + chunk_bytes >= len(audio)
            alignment = chunk_alignment(speech, t0, t0 + conn.chunk_ms, k == 0, last)
            await conn.send_audio(self, piece, alignment)


def chunk_alignment(
    speech: Speech, t0: int, t1: int, first: bool, last: bool
) -> dict[str, list[Any]]:
    """The characters an audio chunk [t0, t1) ms carries: those starting in it, and at the
    edges those before the first chunk or after the last one (trailing punctuation may be
    timed past the audio's end), so every character of the text is sent exactly once."""
    lo = -1 if first else t0
    hi = None if last else t1
    idx = [i for i, s in enumerate(speech.char_starts_ms) if s >= lo and (hi is None or s < hi)]
    return {
        "chars": [speech.text[i] for i in idx],
        "charStartTimesMs": [max(0, speech.char_starts_ms[i] - t0) for i in idx],
        "charDurationsMs": [speech.char_durations_ms[i] for i in idx],
    }


class _Connection:
    def __init__(
        self,
        network: PhoneNetwork,
        ws: web.WebSocketResponse,
        record: ConnectionRecord,
        multi: bool,
    ) -> None:
        cfg = network.config
        self.network = network
        self.ws = ws
        self.record = record
        self.multi = multi
        self.ttfb = cfg.elevenlabs_ttfb_ms / 1000
        self.ttfb_sigma = cfg.elevenlabs_ttfb_sigma
        self.speed = max(0.1, cfg.elevenlabs_speed)
        self.chunk_ms = cfg.elevenlabs_chunk_ms
        self.output_format = record.query.get("output_format", "mp3_44100_128")
        self.auto_mode = record.query.get("auto_mode", "false").lower() == "true"
        self.contexts: dict[str, _Context] = {}
        self.workers: list[asyncio.Task[None]] = []  # closed contexts' too: isFinal in flight
        self.authenticated = False
        self._lock = asyncio.Lock()
        # /_sim/faults rules armed on this connection: rule → texts received since armed.
        self.armed: dict[FaultRule, int] = {}
        self.drops: list[asyncio.Task[None]] = []

    def encode(self, ulaw: bytes) -> bytes:
        if self.output_format == "ulaw_8000":
            return ulaw
        rate = _PCM_RATES[self.output_format]
        pcm = resample(ulaw_decode(ulaw).astype(np.float32), SAMPLE_RATE, rate)
        return np.clip(pcm, -32768, 32767).astype("<i2").tobytes()

    async def _send(self, msg: dict[str, Any]) -> None:
        async with self._lock:
            if not self.ws.closed:
                await self.ws.send_str(json.dumps(msg))

    async def send_audio(self, ctx: _Context, ulaw: bytes, alignment: dict[str, Any]) -> None:
        data = self.encode(ulaw)
        ctx.record.audio_messages += 1
        ctx.record.audio_bytes += len(data)
        msg: dict[str, Any] = {"audio": base64.b64encode(data).decode()}
        if not self.multi:
            msg["isFinal"] = None
        msg["normalizedAlignment"] = alignment
        msg["alignment"] = alignment
        if self.multi:
            msg["contextId"] = ctx.id
        await self._send(msg)

    async def send_final(self, ctx: _Context) -> None:
        await self._send(
            {"isFinal": True, "contextId": ctx.id} if self.multi else {"isFinal": True}
        )

    def count_text(self, text: str) -> None:
        """A text arrived: arm matching fault rules, and drop the socket on the n-th text."""
        faults = self.network.faults
        for rule in faults.candidates("elevenlabs", "drop_after_texts"):
            if rule not in self.armed and (rule.match is None or rule.match in text):
                self.armed[rule] = 0
        for rule in list(self.armed):
            self.armed[rule] += 1
            if self.armed[rule] >= rule.value and rule.take():
                del self.armed[rule]
                faults.log(rule, connection=self.record.id, close_code=rule.close_code)
                self.record.fault = rule.id
                self.drops.append(asyncio.create_task(self._drop(rule)))

    async def _drop(self, rule: FaultRule) -> None:
        await asyncio.sleep(rule.delay_ms / 1000)
        self.record.error = "internal_error"
        self.record.close_code = rule.close_code  # ours, whatever the client answers
        await self._send(
            {"message": "An internal server error occurred.", "error": "internal_error"}
        )
        await self.ws.close(code=rule.close_code, message=b"internal_error")

    async def fail(self, message: str, error: str) -> None:
        self.record.error = message
        await self._send({"message": message, "error": error, "code": 1008})
        await self.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=error.encode())

    def context(self, context_id: str, msg: dict[str, Any]) -> _Context | None:
        ctx = self.contexts.get(context_id)
        if ctx is None:
            if len(self.contexts) >= MAX_CONTEXTS:
                return None
            gen_cfg = msg.get("generation_config") or {}
            schedule = tuple(int(x) for x in gen_cfg.get("chunk_length_schedule") or ()) or (
                DEFAULT_SCHEDULE
            )
            ctx = self.contexts[context_id] = _Context(self, context_id, schedule)
            self.workers.append(ctx.worker)
        return ctx

    async def close_all(self, wait: float) -> None:
        workers = [w for w in self.workers if not w.done()]
        if workers:
            await asyncio.wait(workers, timeout=wait)
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)


def _api_key(request: web.Request) -> str | None:
    key = request.headers.get("xi-api-key") or request.query.get("xi-api-key")
    auth = request.headers.get("Authorization", "") or request.query.get("authorization", "")
    if not key and auth.startswith("Bearer "):
        key = auth[7:]
    return key or None


async def _tts_socket(request: web.Request, multi: bool) -> web.StreamResponse:
    network = request.app[NETWORK_KEY]
    cfg = network.config
    query = dict(request.query)
    fmt = query.get("output_format", "mp3_44100_128")
    if fmt != "ulaw_8000" and fmt not in _PCM_RATES:
        return web.json_response(
            {
                "detail": {
                    "status": "invalid_output_format",
                    "message": f"The simulator produces ulaw_8000 and pcm_* audio, not {fmt}.",
                }
            },
            status=400,
        )
    faults = network.faults
    for rule in faults.candidates("elevenlabs", "status"):
        if rule.take():
            faults.log(rule, endpoint=request.path)
            return web.json_response(
                {
                    "detail": {
                        "status": "service_unavailable" if rule.value >= 500 else "error",
                        "message": "The service is temporarily unavailable.",
                    }
                },
                status=int(rule.value),
            )
    ws = web.WebSocketResponse(max_msg_size=0, autoping=True)
    await ws.prepare(request)
    record = ConnectionRecord(
        id=uuid.uuid4().hex,
        endpoint="multi-stream-input" if multi else "stream-input",
        voice_id=request.match_info["voice_id"],
        query=query,
    )
    network.records.elevenlabs.append(record)
    conn = _Connection(network, ws, record, multi)
    header_key = _api_key(request)
    conn.authenticated = header_key is not None and (
        not cfg.elevenlabs_api_key or header_key == cfg.elevenlabs_api_key
    )
    try:
        inactivity = min(180.0, float(query.get("inactivity_timeout", "20")))
    except ValueError:
        inactivity = 20.0
    try:
        while True:
            try:
                msg = await ws.receive(timeout=inactivity)
            except TimeoutError:
                await conn.fail(
                    f"Input timeout exceeded: no text received for {inactivity:g} seconds.",
                    "input_timeout_exceeded",
                )
                break
            if msg.type != WSMsgType.TEXT:
                break
            try:
                data = json.loads(msg.data)
            except json.JSONDecodeError:
                await conn.fail("Invalid JSON message.", "invalid_message")
                break
            if not isinstance(data, dict):
                await conn.fail("Invalid message.", "invalid_message")
                break
            if not conn.authenticated:
                key = data.get("xi_api_key") or data.get("xi-api-key")
                bearer = str(data.get("authorization") or "")
                key = key or (bearer[7:] if bearer.startswith("Bearer ") else None)
                if not key or (cfg.elevenlabs_api_key and key != cfg.elevenlabs_api_key):
                    await conn.fail("Invalid API key or missing xi-api-key.", "auth_error")
                    break
                conn.authenticated = True
            if await _handle(conn, data):
                break
            text = data.get("text")
            if isinstance(text, str) and text.strip():
                conn.count_text(text)
    finally:
        if conn.drops:
            if ws.closed:  # a fault closed it: let that close handshake finish
                await asyncio.wait(conn.drops, timeout=2.0)
            for task in conn.drops:
                task.cancel()
        await conn.close_all(wait=30.0 if not ws.closed else 0.0)
        if not ws.closed:
            await ws.close()
        record.closed_at = datetime.now(UTC)
        if record.close_code is None:
            record.close_code = ws.close_code
    return ws


async def _handle(conn: _Connection, data: dict[str, Any]) -> bool:
    """Apply one client message; True when the socket should close."""
    if not conn.multi:
        ctx = conn.context("default", data)
        assert ctx is not None
        ctx.record.messages += 1
        text = data.get("text")
        if text == "" and not data.get("flush"):  # end of input: generate the rest, close
            ctx.generate_all()
            ctx.finish("end_of_input")
            await asyncio.wait({ctx.worker}, timeout=60)
            return True
        if isinstance(text, str):
            ctx.add_text(text, bool(data.get("flush")), bool(data.get("try_trigger_generation")))
        elif data.get("flush"):
            ctx.record.flushes += 1
            ctx.generate_all()
        return False
    if data.get("close_socket"):
        for ctx in conn.contexts.values():
            ctx.generate_all()
            ctx.finish("close_socket")
        await conn.close_all(wait=60.0)
        return True
    context_id = str(data.get("context_id") or "default")
    if data.get("close_context"):
        ctx = conn.contexts.pop(context_id, None)
        if ctx is not None:
            ctx.record.messages += 1
            ctx.close()
        return False
    ctx = conn.context(context_id, data)
    if ctx is None:
        await conn.fail(
            f"Maximum simultaneous contexts per WebSocket connection exceeded ({MAX_CONTEXTS}). "
            "Please close an existing context before opening a new one.",
            "max_active_conversations",
        )
        return True
    ctx.record.messages += 1
    text = data.get("text")
    if isinstance(text, str) and text:
        ctx.add_text(text, bool(data.get("flush")), False)
    elif data.get("flush"):  # {"context_id", "flush": true}, or an empty text with flush
        ctx.record.flushes += 1
        ctx.generate_all()
    # {"text": "", "context_id"} without flush is a keep-alive: nothing to do.
    return False


async def stream_input(request: web.Request) -> web.StreamResponse:
    return await _tts_socket(request, multi=False)


async def multi_stream_input(request: web.Request) -> web.StreamResponse:
    return await _tts_socket(request, multi=True)


def add_elevenlabs_routes(app: web.Application) -> None:
    app.router.add_get("/v1/text-to-speech/{voice_id}/stream-input", stream_input)
    app.router.add_get("/v1/text-to-speech/{voice_id}/multi-stream-input", multi_stream_input)
