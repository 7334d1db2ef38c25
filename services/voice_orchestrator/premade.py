"""Pre-made audio of fixed lines: synthesized once, ahead of the moment it is needed.

The greeting, the disclosure, the goodbyes are known before they are said (`Conversation.
premade_lines()`); playing them from memory takes the TTS round trip out of those turns.

- `PremadeCache`: process-wide, keyed by (voice, model, output format, text), bounded by the
  bytes of audio it holds; the least recently used line goes first.
- `PremadeSynthesizer`: process-wide, one dedicated ElevenLabs socket (`ElevenLabsTts`, the same
  multi-context protocol the calls speak), one context per line, at most `MAX_CONTEXTS` at once.
  A line asked for by several calls is synthesized once. If the socket fails, nothing is retried
  for `RETRY_AFTER_S`: lines are then simply not there, and the session speaks them live.
- `PremadeLines`: one per call. `prefetch()` starts the missing lines, `get()` never waits,
  `wait()` waits a bounded time; both answer None rather than raise. `characters` is what this
  call's syntheses cost (a line another call already made costs nothing).

A line's audio is μ-law 8 kHz, and its alignment covers the whole of it: each chunk's character
times (relative to the chunk on the wire) are shifted by the audio before the chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from services.common.logging import get_logger
from services.common.settings import Settings
from services.voice_orchestrator.ports import (
    Alignment,
    PremadeAudio,
    TtsAudio,
    TtsContextLost,
    TtsDone,
    TtsEvent,
    TtsFailed,
    TtsUnavailable,
)
from services.voice_orchestrator.vendors.elevenlabs import ElevenLabsTts

log = get_logger(__name__)

OUTPUT_FORMAT = "ulaw_8000"  # what ElevenLabsTts asks for, and what Twilio plays
BYTES_PER_MS = 8  # μ-law, 8 kHz, one byte a sample
FRAME_MS = 20
MAX_CONTEXTS = 4  # ElevenLabs allows 5 per socket
LINE_TIMEOUT_S = 30.0  # one line, text sent to last audio
RETRY_AFTER_S = 10.0  # after the socket failed, before it is tried again

Key = tuple[str, str, str, str]  # voice_id, model_id, output_format, text


class PremadeCache:
    """Lines by key, at most `max_bytes` of audio in all; least recently used evicted first."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[Key, PremadeAudio] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def get(self, key: Key) -> PremadeAudio | None:
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def put(self, key: Key, item: PremadeAudio) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            self.bytes -= len(old.audio)
        if len(item.audio) > self.max_bytes:
            return  # would evict everything and still not fit
        self._items[key] = item
        self.bytes += len(item.audio)
        while self.bytes > self.max_bytes:
            _, evicted = self._items.popitem(last=False)
            self.bytes -= len(evicted.audio)


def _nonspace(text: str) -> int:
    return sum(1 for c in text if not c.isspace())


@dataclass
class _Line:
    """One line being synthesized: its chunks as they come back, joined into one alignment."""

    text: str
    done: asyncio.Future[bool]  # True: complete; False: lost
    sent_nonspace: int = 0
    chunks: list[bytes] = field(default_factory=list)
    chars: list[str] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    durations: list[int] = field(default_factory=list)
    audio_ms: float = 0.0
    aligned_end_ms: float = 0.0
    aligned_nonspace: int = 0
    alignment_missing: bool = False

    def add(self, event: TtsAudio) -> None:
        base = self.audio_ms
        a = event.alignment
        if a is None:
            self.alignment_missing = True
        else:
            for c, s, d in zip(a.chars, a.start_ms, a.duration_ms, strict=False):
                start = round(base + s)
                self.chars.append(c)
                self.starts.append(start)
                self.durations.append(d)
                self.aligned_end_ms = max(self.aligned_end_ms, start + d)
                if not c.isspace():
                    self.aligned_nonspace += 1
        self.chunks.append(event.audio)
        self.audio_ms += len(event.audio) / BYTES_PER_MS
        self._check_complete()

    def _check_complete(self) -> None:
        # As the session decides a live turn is complete: the alignment covers every character
        # sent and the audio reaches the last one's end. (isFinal comes only after close_context,
        # and closing earlier may drop audio not yet sent.)
        if (
            self.sent_nonspace
            and not self.alignment_missing
            and self.aligned_nonspace >= self.sent_nonspace
            and self.audio_ms + FRAME_MS >= self.aligned_end_ms
        ):
            self.finish(True)

    def text_sent(self) -> None:
        self.sent_nonspace = _nonspace(self.text)
        self._check_complete()

    def finish(self, ok: bool) -> None:
        if not self.done.done():
            self.done.set_result(ok)

    def result(self) -> PremadeAudio:
        return PremadeAudio(
            self.text, b"".join(self.chunks), Alignment(self.chars, self.starts, self.durations)
        )


TtsFactory = Callable[[Settings], ElevenLabsTts]


class PremadeSynthesizer:
    """Process-wide: the cache, the dedicated socket and the lines in flight."""

    def __init__(
        self,
        settings: Settings,
        *,
        cache: PremadeCache | None = None,
        tts_factory: TtsFactory | None = None,
        line_timeout_s: float = LINE_TIMEOUT_S,
        retry_after_s: float = RETRY_AFTER_S,
    ) -> None:
        self.settings = settings
        self.cache = cache or PremadeCache(settings.premade_cache_max_bytes)
        self.line_timeout_s = line_timeout_s
        self.retry_after_s = retry_after_s
        self.syntheses = 0  # lines sent to the TTS (each once)
        self.characters = 0  # what they cost, metered as ElevenLabsTts meters
        self._factory: TtsFactory = tts_factory or (lambda s: ElevenLabsTts(s, max_reconnects=1))
        self._tts: ElevenLabsTts | None = None
        self._run: asyncio.Task[None] | None = None
        self._lines: dict[str, _Line] = {}  # by context id
        self._inflight: dict[Key, asyncio.Future[PremadeAudio | None]] = {}
        self._jobs: set[asyncio.Task[None]] = set()
        self._slots: asyncio.Semaphore | None = None
        self._ids = itertools.count(1)
        self._down_until = 0.0
        self._down_logged = False
        self._closed = False

    def key(self, text: str) -> Key:
        s = self.settings
        return (s.elevenlabs_voice_id, s.elevenlabs_model_id, OUTPUT_FORMAT, text)

    def lookup(self, text: str) -> PremadeAudio | None:
        return self.cache.get(self.key(text))

    def pending(self, text: str) -> asyncio.Future[PremadeAudio | None] | None:
        return self._inflight.get(self.key(text))

    def request(
        self, text: str, bill: Callable[[int], None] | None = None, tag: str = ""
    ) -> asyncio.Future[PremadeAudio | None] | None:
        """The line's synthesis (started now unless it is under way); its result is None if it
        failed. None: not to be had now (turned off, closed, the socket is down). `bill` gets
        the characters sent, only if this request started the synthesis."""
        key = self.key(text)
        fut = self._inflight.get(key)
        if fut is not None:
            return fut
        if self._closed or not text.strip() or self.cache.max_bytes <= 0:
            return None
        loop = asyncio.get_running_loop()
        if loop.time() < self._down_until:
            return None
        fut = loop.create_future()
        self._inflight[key] = fut
        job = asyncio.create_task(self._synthesize(key, text, fut, bill, tag), name="premade-line")
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)
        return fut

    # ---- the socket ---------------------------------------------------------------------
    def _socket(self) -> ElevenLabsTts:
        tts = self._tts
        if tts is None or not tts.usable or self._run is None or self._run.done():
            tts = self._tts = self._factory(self.settings)
            self._run = asyncio.create_task(tts.run(self._on_event), name="premade-tts")
        return tts

    def _on_event(self, event: TtsEvent) -> None:
        if isinstance(event, TtsAudio):
            line = self._lines.get(event.context_id)
            if line is not None:
                line.add(event)
        elif isinstance(event, TtsDone):
            line = self._lines.get(event.context_id)
            if line is not None:
                line.finish(line.sent_nonspace > 0 and line.aligned_nonspace >= line.sent_nonspace)
        elif isinstance(event, TtsContextLost):
            for context_id in event.context_ids:
                line = self._lines.get(context_id)
                if line is not None:
                    line.finish(False)
        elif isinstance(event, TtsFailed):
            self._socket_failed(event.error)

    def _socket_failed(self, error: str) -> None:
        self._down_until = asyncio.get_running_loop().time() + self.retry_after_s
        self._tts = None
        if not self._down_logged:
            self._down_logged = True
            log.warning("premade_tts_unavailable", error=error, retry_after_s=self.retry_after_s)
        for line in self._lines.values():
            line.finish(False)

    # ---- one line -------------------------------------------------------------------------
    async def _synthesize(
        self,
        key: Key,
        text: str,
        fut: asyncio.Future[PremadeAudio | None],
        bill: Callable[[int], None] | None,
        tag: str,
    ) -> None:
        result: PremadeAudio | None = None
        try:
            if self._slots is None:
                self._slots = asyncio.Semaphore(MAX_CONTEXTS)
            async with self._slots:
                result = await self._one(text, bill, tag)
            if result is not None:
                self.cache.put(key, result)
                if self._down_logged:
                    self._down_logged = False
                    log.info("premade_tts_recovered")
        except Exception as exc:  # never raises to a caller: the line is spoken live instead
            log.warning("premade_line_failed", error=repr(exc))
        finally:
            self._inflight.pop(key, None)
            if not fut.done():
                fut.set_result(result)

    async def _one(
        self, text: str, bill: Callable[[int], None] | None, tag: str = ""
    ) -> PremadeAudio | None:
        loop = asyncio.get_running_loop()
        if self._closed or loop.time() < self._down_until:
            return None
        tts = self._socket()
        # Named after the call that pays for it, so its characters can be traced to that call.
        context_id = f"premade-{tag}-{next(self._ids)}" if tag else f"premade-{next(self._ids)}"
        line = _Line(text, loop.create_future())
        self._lines[context_id] = line
        try:
            async with asyncio.timeout(self.line_timeout_s):
                sending = asyncio.ensure_future(self._send(tts, context_id, line, bill))
                try:
                    # A failed socket finishes the line at once; the send may still be waiting
                    # for a connection that will not come.
                    either: set[asyncio.Future[Any]] = {sending, line.done}
                    await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    if not sending.done():
                        sending.cancel()
                    await asyncio.gather(sending, return_exceptions=True)
                if sending.done() and not sending.cancelled() and sending.exception() is not None:
                    line.finish(False)
                ok = await line.done
        except TimeoutError:
            ok = False
            log.warning("premade_line_timeout", chars=len(text))
        finally:
            self._lines.pop(context_id, None)
            if self._tts is tts:
                with contextlib.suppress(Exception):
                    await tts.close_context(context_id)
        if not ok:
            return None
        self.syntheses += 1
        return line.result()

    async def _send(
        self,
        tts: ElevenLabsTts,
        context_id: str,
        line: _Line,
        bill: Callable[[int], None] | None,
    ) -> None:
        try:
            await tts.open_context(context_id)
            before = tts.characters
            await tts.send_text(context_id, line.text, flush=True)
        except TtsUnavailable:
            line.finish(False)
            return
        cost = tts.characters - before
        self.characters += cost
        if bill is not None:
            bill(cost)
        line.text_sent()

    async def aclose(self) -> None:
        self._closed = True
        for job in list(self._jobs):
            job.cancel()
        await asyncio.gather(*self._jobs, return_exceptions=True)
        tts, run = self._tts, self._run
        self._tts = self._run = None
        if tts is not None:
            with contextlib.suppress(Exception):
                await tts.close()
        if run is not None:
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)


class PremadeLines:
    """One call's view of the pre-made lines (backed by the process-wide synthesizer)."""

    def __init__(self, synth: PremadeSynthesizer | None, tag: str = "") -> None:
        self.synth = synth
        self.tag = tag  # in the context ids of the syntheses this call starts (its call id)
        self.characters = 0  # TTS characters this call's syntheses cost: add to its usage
        self._closed = False

    def _bill(self, characters: int) -> None:
        self.characters += characters

    def prefetch(self, texts: Iterable[str]) -> None:
        """Start synthesizing the lines not made yet, in the background. Never raises."""
        if self.synth is None or self._closed:
            return
        try:
            for text in texts:
                if self.synth.lookup(text) is None:
                    self.synth.request(text, self._bill, self.tag)
        except Exception as exc:
            log.warning("premade_prefetch_failed", error=repr(exc))

    def get(self, text: str) -> PremadeAudio | None:
        """The line's audio if it is ready; never waits."""
        return self.synth.lookup(text) if self.synth is not None else None

    def is_pending(self, text: str) -> bool:
        """Being made now (asked for at dial time, or by another call)."""
        return self.synth is not None and self.synth.pending(text) is not None

    async def wait(self, text: str, timeout_s: float) -> PremadeAudio | None:
        """The line's audio, synthesizing it now if nobody asked yet; None after `timeout_s`
        or if it cannot be made (it goes on in the background for the next one who asks)."""
        ready = self.get(text)
        if ready is not None or self.synth is None:
            return ready
        fut = self.synth.pending(text)
        if fut is None and not self._closed:
            try:
                fut = self.synth.request(text, self._bill, self.tag)
            except Exception as exc:
                log.warning("premade_request_failed", error=repr(exc))
                return None
        if fut is None:
            return None
        try:
            async with asyncio.timeout(timeout_s):
                return await asyncio.shield(fut)
        except TimeoutError:
            return None

    async def aclose(self) -> None:
        """This call is done with its lines. Syntheses under way finish for the cache."""
        self._closed = True
