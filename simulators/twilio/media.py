"""The phone side of a Twilio bidirectional Media Stream (``<Connect><Stream>``).

One task per call runs a 20 ms clock. Each tick it plays 160 bytes of the agent audio queued by
the server (``media`` messages, played in order at 8000 bytes/s), echoes ``mark`` messages whose
audio has been played, asks the persona for the debtor's next frame and sends it as a ``media``
message (0xFF silence when nobody speaks). ``clear`` drops the queued audio and echoes every
pending mark at once. Everything the server sent is recorded for the control API.

With ``twilio_media_latency_ms`` the network between Twilio and the server takes that long each
way: what the phone sends (media, marks) leaves that many frames later, and what the server sends
(media, mark, clear) takes effect at the phone that much later. The recordings are the phone's:
debtor lines when spoken, agent audio when played.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from yarl import URL

from simulators.common.audio import FRAME_BYTES, FRAME_MS, SAMPLE_RATE, SILENCE_FRAME
from simulators.common.sounds import sound_speech
from simulators.common.speech import Speech
from simulators.common.utterance import Utterance
from simulators.personas.runtime import PersonaRuntime, SpokenLine
from simulators.twilio.amd import AmdDetector
from simulators.twilio.ports import StreamCall
from simulators.twilio.signature import compute_signature
from simulators.twilio.twiml import StreamVerb

_SILENCE_B64 = base64.b64encode(SILENCE_FRAME).decode()
_MAX_CATCH_UP_S = 0.2  # further behind than this, skip frames instead of bursting them


class Playback:
    """Agent audio queued by the server, played in order at 8000 bytes/s, with marks."""

    __slots__ = ("buf", "marks", "off", "played", "queued_end")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.off = 0
        self.played = 0  # bytes played since the stream started
        self.queued_end = 0  # stream position where the queued audio ends
        self.marks: deque[tuple[int, dict[str, Any]]] = deque()

    @property
    def queued(self) -> int:
        return len(self.buf) - self.off

    def enqueue(self, data: bytes) -> None:
        self.buf += data
        self.queued_end += len(data)

    def mark(self, record: dict[str, Any]) -> None:
        self.marks.append((self.queued_end, record))

    def take(self, n: int) -> bytes:
        chunk = bytes(self.buf[self.off : self.off + n])
        self.off += len(chunk)
        self.played += len(chunk)
        if self.off > 65536:  # compact now and then, not every frame
            del self.buf[: self.off]
            self.off = 0
        return chunk

    def due_marks(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while self.marks and self.marks[0][0] <= self.played:
            out.append(self.marks.popleft()[1])
        return out

    def clear(self) -> tuple[int, list[dict[str, Any]]]:
        dropped = self.queued
        self.buf.clear()
        self.off = 0
        self.queued_end = self.played
        marks = [rec for _, rec in self.marks]
        self.marks.clear()
        return dropped, marks


@dataclass(slots=True)
class AgentSegment:
    start_ms: int
    audio: bytearray = field(default_factory=bytearray)

    @property
    def end_ms(self) -> int:
        return self.start_ms + len(self.audio) * 1000 // SAMPLE_RATE


class MediaStream:
    def __init__(self, call: StreamCall, verb: StreamVerb) -> None:
        self.call = call
        self.verb = verb
        self.stream_sid = "MZ" + secrets.token_hex(16)
        self.signature = compute_signature(call.auth_token, verb.url)
        self.playback = Playback()
        self.stop_reason: str | None = None
        self.error: str | None = None
        self.connected_at: float | None = None  # loop time
        self.t0: float | None = None  # loop time of frame 0 (media timestamp 0)
        self.frames_sent = 0
        self.frames_late = 0
        self.seq = 0
        self.received: list[dict[str, Any]] = []  # every non-media message, as received
        self.media_received: list[tuple[int, int]] = []  # (stream ms, payload bytes)
        self.media_bytes_received = 0
        self.sent: list[dict[str, Any]] = []  # every non-media message we sent
        self.marks: list[dict[str, Any]] = []
        self.clears: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.segments: list[AgentSegment] = []
        self.overlaps: list[list[int]] = []  # [start_ms, end_ms] agent audio over debtor speech
        self.overlap_ms = 0.0
        self.debtor_audio: list[tuple[int, bytes]] = []
        self._ms = 0
        self._pending_marks: list[dict[str, Any]] = []  # echoes of cleared marks, next tick
        self._utterances: dict[int, Utterance] = {}
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._was_playing = False
        self._prev_overlap = False
        # Media-leg latency: messages to the server wait this many frames; messages from it are
        # applied once their due time (loop time) has come.
        latency_ms = max(0.0, call.network.config.twilio_media_latency_ms)
        self._delay_frames = round(latency_ms / FRAME_MS)
        self._delay_s = latency_ms / 1000
        self._wire_out: deque[tuple[int, str]] = deque()
        self._wire_in: deque[tuple[float, str]] = deque()
        persona = call.persona
        self.speeches: list[Speech | None] = [None] * len(persona.lines)
        self.runtime = PersonaRuntime(
            persona, self.speeches, self._line_started, self._line_ended, heard=self._agent_said
        )
        self.amd = AmdDetector(call.amd, persona) if call.amd is not None else None

    # -- persona hooks ----------------------------------------------------------------------
    def _agent_said(self, words: str, since_ms: int) -> bool:
        """Did the agent audio played since `since_ms` (stream time) say `words`?"""
        played = b"".join(s.audio for s in self.segments if s.end_ms > since_ms)
        return self.call.network.agent_said(words, played)

    def _line_started(self, line: SpokenLine, speech: Speech) -> None:
        self.debtor_audio.append((line.start_ms, speech.audio))
        if (
            0 <= line.index < len(self.call.persona.lines)
            and self.call.persona.lines[line.index].sound
        ):
            return  # a tone: no words for the Deepgram simulator
        utt = Utterance(
            self.call.sid, line.index, line.text, speech, asyncio.get_running_loop().time()
        )
        self._utterances[id(line)] = utt
        self.call.network.add_utterance(utt)

    def _line_ended(self, line: SpokenLine) -> None:
        utt = self._utterances.pop(id(line), None)
        if utt is not None:
            utt.ended_at = asyncio.get_running_loop().time()
        if line.cut_off and self.debtor_audio:
            start, audio = self.debtor_audio[-1]
            n = max(0, (line.end_ms or start) - start) * SAMPLE_RATE // 1000
            self.debtor_audio[-1] = (start, audio[:n])

    async def _prefetch(self) -> None:
        for i, line in enumerate(self.call.persona.lines):
            if line.sound:
                self.speeches[i] = sound_speech(line.sound)
            else:
                self.speeches[i] = await self.call.network.speech_for_text(line.text)

    async def say(self, text: str) -> None:
        speech = await self.call.network.speech_for_text(text)
        self.runtime.say(text, speech)

    # -- wire ---------------------------------------------------------------------------------
    def _next_seq(self) -> str:
        self.seq += 1
        return str(self.seq)

    async def _send(self, msg: dict[str, Any], *, delayed: bool = False) -> None:
        assert self._ws is not None
        self.sent.append({"at_ms": self._ms, **msg})
        await self._wire(json.dumps(msg), delayed)

    async def _wire(self, data: str, delayed: bool) -> None:
        """Send now, or (media-leg latency) once `_delay_frames` more frames have passed."""
        assert self._ws is not None
        if delayed and self._delay_frames:
            self._wire_out.append((self._ms // FRAME_MS + self._delay_frames, data))
        else:
            await self._ws.send_str(data)

    async def _flush_wire_out(self, n: int | None) -> None:
        """Send what is due by frame `n` (None: everything, in order)."""
        ws = self._ws
        assert ws is not None
        q = self._wire_out
        while q and (n is None or q[0][0] <= n):
            await ws.send_str(q.popleft()[1])

    async def run(self) -> str:
        """Connect, stream until someone hangs up; returns why the stream ended."""
        session = self.call.http
        prefetch = asyncio.create_task(self._prefetch())
        try:
            try:
                self._ws = await session.ws_connect(
                    URL(self.verb.url, encoded=True),  # exactly the URL that was signed
                    headers={"X-Twilio-Signature": self.signature},
                    autoping=True,
                    max_msg_size=0,
                )
            except (aiohttp.ClientError, OSError) as exc:
                self.error = f"WebSocket connect failed: {exc}"
                return "connect_failed"
            loop = asyncio.get_running_loop()
            self.connected_at = loop.time()
            await self._ws.send_str(json.dumps(self._connected_msg()))
            self.sent.append({"at_ms": 0, **self._connected_msg()})
            await self._send(self._start_msg())
            await self.call.stream_event("stream-started", self.stream_sid, self.verb)
            receiver = asyncio.create_task(self._receive())
            try:
                await self._clock()
            finally:
                if self.stop_reason != "server_closed" and not self._ws.closed:
                    try:
                        await self._flush_wire_out(None)
                        await self._send(self._stop_msg())
                        await self._ws.close()
                    except (aiohttp.ClientError, ConnectionError, RuntimeError):
                        pass
                receiver.cancel()
                await asyncio.gather(receiver, return_exceptions=True)
                self.runtime.finish(self._ms)
            await self.call.stream_event("stream-stopped", self.stream_sid, self.verb)
            return self.stop_reason or "ended"
        finally:
            prefetch.cancel()
            await asyncio.gather(prefetch, return_exceptions=True)

    def _connected_msg(self) -> dict[str, Any]:
        return {"event": "connected", "protocol": "Call", "version": "1.0.0"}

    def _start_msg(self) -> dict[str, Any]:
        return {
            "event": "start",
            "sequenceNumber": self._next_seq(),
            "start": {
                "accountSid": self.call.account_sid,
                "streamSid": self.stream_sid,
                "callSid": self.call.sid,
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                "customParameters": dict(self.verb.parameters),
            },
            "streamSid": self.stream_sid,
        }

    def _stop_msg(self) -> dict[str, Any]:
        return {
            "event": "stop",
            "sequenceNumber": self._next_seq(),
            "streamSid": self.stream_sid,
            "stop": {"accountSid": self.call.account_sid, "callSid": self.call.sid},
        }

    async def _clock(self) -> None:
        loop = asyncio.get_running_loop()
        self.t0 = t0 = loop.time()
        n = 0
        while self.stop_reason is None:
            delay = t0 + n * FRAME_MS / 1000 - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -_MAX_CATCH_UP_S:
                skipped = int(-delay * 1000 / FRAME_MS)
                n += skipped
                self.frames_late += skipped
            if self.call.hangup_requested.is_set():
                self.stop_reason = "rest_hangup"
                break
            if self.call.deadline is not None and loop.time() >= self.call.deadline:
                self.stop_reason = "time_limit"
                break
            try:
                await self._tick(n)
            except (aiohttp.ClientError, ConnectionError, RuntimeError):
                self.stop_reason = self.stop_reason or "server_closed"
                break
            n += 1

    async def _tick(self, n: int) -> None:
        ms = self._ms = n * FRAME_MS
        if self._wire_in:
            now = asyncio.get_running_loop().time()
            while self._wire_in and self._wire_in[0][0] <= now:
                self._handle(self._wire_in.popleft()[1])
        if self._wire_out:
            await self._flush_wire_out(n)
        pb = self.playback
        chunk = pb.take(FRAME_BYTES) if pb.off < len(pb.buf) else b""
        playing = bool(chunk)
        if playing:
            if not self._was_playing or not self.segments:
                self.segments.append(AgentSegment(ms))
            self.segments[-1].audio += chunk
        self._was_playing = playing
        frame = self.runtime.tick(ms, playing)
        if self.amd is not None and (verdict := self.amd.tick(ms, self.runtime.spoken)):
            self.call.amd_result(*verdict)
        overlap = playing and frame is not None
        if overlap:
            self.overlap_ms += len(chunk) * 1000 / SAMPLE_RATE
            if self._prev_overlap and self.overlaps:
                self.overlaps[-1][1] = ms + FRAME_MS
            else:
                self.overlaps.append([ms, ms + FRAME_MS])
        self._prev_overlap = overlap
        payload = base64.b64encode(frame).decode() if frame is not None else _SILENCE_B64
        self.seq += 1
        # Hand-built JSON: this runs 50 times a second per call.
        await self._wire(
            f'{{"event":"media","sequenceNumber":"{self.seq}","media":{{"track":"inbound",'
            f'"chunk":"{n + 1}","timestamp":"{ms}","payload":"{payload}"}},'
            f'"streamSid":"{self.stream_sid}"}}',
            True,
        )
        self.frames_sent += 1
        due = self._pending_marks + pb.due_marks() if pb.marks else self._pending_marks
        if due:
            self._pending_marks = []
            for rec in due:
                rec["echoed_at_ms"] = ms
                await self._send(
                    {
                        "event": "mark",
                        "sequenceNumber": self._next_seq(),
                        "streamSid": self.stream_sid,
                        "mark": {"name": rec["name"]},
                    },
                    delayed=True,
                )
        if self.runtime.hangup:
            self.stop_reason = "persona_hangup"

    async def _receive(self) -> None:
        ws = self._ws
        assert ws is not None
        try:
            loop = asyncio.get_running_loop()
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    if self._delay_s > 0:
                        self._wire_in.append((loop.time() + self._delay_s, msg.data))
                    else:
                        self._handle(msg.data)
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    self.errors.append(f"{self._ms}ms: binary frame ignored (Twilio expects JSON)")
                else:
                    break
        finally:
            if self.stop_reason is None:
                self.stop_reason = "server_closed"

    def _handle(self, data: str) -> None:
        try:
            msg = json.loads(data)
        except json.JSONDecodeError:
            self.errors.append(f"{self._ms}ms: invalid JSON")
            return
        if not isinstance(msg, dict):
            self.errors.append(f"{self._ms}ms: message is not an object")
            return
        event = msg.get("event")
        if msg.get("streamSid") != self.stream_sid:
            self.errors.append(f"{self._ms}ms: {event} with wrong streamSid {msg.get('streamSid')}")
        if event == "media":
            payload = (msg.get("media") or {}).get("payload", "")
            try:
                audio = base64.b64decode(payload, validate=True)
            except (binascii.Error, TypeError, ValueError):
                self.errors.append(f"{self._ms}ms: media payload is not base64")
                return
            self.playback.enqueue(audio)
            self.media_bytes_received += len(audio)
            self.media_received.append((self._ms, len(audio)))
            return
        self.received.append({"at_ms": self._ms, **msg})
        if event == "mark":
            name = (msg.get("mark") or {}).get("name")
            rec = {"name": name, "received_at_ms": self._ms, "echoed_at_ms": None}
            rec["cleared"] = False
            self.marks.append(rec)
            self.playback.mark(rec)
        elif event == "clear":
            dropped, marks = self.playback.clear()
            for rec in marks:
                rec["cleared"] = True
            self._pending_marks.extend(marks)
            self.clears.append(
                {
                    "at_ms": self._ms,
                    "dropped_bytes": dropped,
                    "dropped_ms": dropped * 1000 // SAMPLE_RATE,
                    "marks_echoed": [r["name"] for r in marks],
                }
            )
        else:
            self.errors.append(f"{self._ms}ms: unknown event {event!r}")

    # -- control API --------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "stream_sid": self.stream_sid,
            "url": self.verb.url,
            "custom_parameters": dict(self.verb.parameters),
            "handshake_signature": self.signature,
            "stop_reason": self.stop_reason,
            "error": self.error,
            "frames_sent": self.frames_sent,
            "frames_late": self.frames_late,
            "t0": self.t0,  # loop time (time.monotonic()) of frame 0: frame n is never earlier
            "duration_ms": self._ms,
            "received": self.received,
            "media_messages_received": len(self.media_received),
            "media_bytes_received": self.media_bytes_received,
            "sent": self.sent,
            "marks": self.marks,
            "clears": self.clears,
            "errors": self.errors,
            "agent_audio": [
                {"start_ms": s.start_ms, "end_ms": s.end_ms, "bytes": len(s.audio)}
                for s in self.segments
            ],
            "agent_audio_ms": sum(len(s.audio) for s in self.segments) * 1000 // SAMPLE_RATE,
            "agent_audio_queued_bytes": self.playback.queued,
            "overlap_ms": round(self.overlap_ms),
            "overlaps": self.overlaps,
            "debtor_lines": [
                {
                    "index": ln.index,
                    "text": ln.text,
                    "start_ms": ln.start_ms,
                    "end_ms": ln.end_ms,
                    "cut_off": ln.cut_off,
                }
                for ln in self.runtime.spoken
            ],
        }

    def track(self, which: str) -> bytes:
        """The agent or debtor track as μ-law on the stream timeline (silence = 0xFF)."""
        total = max(self._ms + FRAME_MS, 0) * SAMPLE_RATE // 1000
        out = bytearray(SILENCE_FRAME[:1] * total)
        pieces: list[tuple[int, bytes | bytearray]] = (
            [(s.start_ms, s.audio) for s in self.segments]
            if which == "agent"
            else list(self.debtor_audio)
        )
        for start_ms, audio in pieces:
            pos = start_ms * SAMPLE_RATE // 1000
            end = min(total, pos + len(audio))
            if end > pos:
                out[pos:end] = audio[: end - pos]
        return bytes(out)
