"""Synthesis: one TTS context per agent turn; audio and character alignment into the playout
buffer as it arrives; a turn's audio judged complete; what a dropped socket had not synthesized
said again in a new context.

A fixed line whose audio was made ahead (`PremadeLines`) goes straight into the buffer: no TTS
round trip. A turn that is only such a line opens no context at all (`turn.premade`)."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from services.voice_orchestrator.core import speakable
from services.voice_orchestrator.media.mulaw import FRAME_MS
from services.voice_orchestrator.ports import (
    Alignment,
    PremadeAudio,
    PremadeLines,
    TextToSpeech,
    TtsAudio,
    TtsContextLost,
    TtsDone,
    TtsEvent,
    TtsFailed,
    TtsUnavailable,
)

from .playout import PlayoutBuffer
from .turn import AgentTurn, nonspace


class Synthesis:
    def __init__(
        self,
        tts: TextToSpeech,
        buffer: PlayoutBuffer,
        *,
        wake: Callable[[], None],
        background: Callable[[Awaitable[Any]], None],
        on_failure: Callable[[str], None],
        now: Callable[[], float],
        premade: PremadeLines | None = None,
    ) -> None:
        self.tts = tts
        self.premade = premade
        self.buffer = buffer
        self._wake = wake  # the pacer: audio was queued
        self._background = background
        self._on_failure = on_failure
        self._now = now
        self.turns: dict[str, AgentTurn] = {}  # by context id

    # ---- text in --------------------------------------------------------------------------
    async def open(self, turn: AgentTurn, *, made_wait_s: float = 0.0) -> None:
        """Ready the turn for its text. A fixed-line turn whose audio is made (or being made
        and ready within `made_wait_s`) needs no TTS context."""
        if turn.fixed_text is not None and self.premade is not None:
            made = self.premade.get(turn.fixed_text)
            if made is None and made_wait_s > 0 and self.premade.is_pending(turn.fixed_text):
                made = await self.premade.wait(turn.fixed_text, made_wait_s)
            if made is not None:
                turn.premade = True
                return
        await self._open_context(turn)

    async def _open_context(self, turn: AgentTurn) -> None:
        self.turns[turn.context_id] = turn
        await self.tts.open_context(turn.context_id)

    async def speak(self, turn: AgentTurn, sentence: str) -> None:
        text = speakable(sentence)
        if not text:
            return
        now = self._now()
        t = turn.timings
        if t.llm_request_at is not None and t.llm_first_sentence_at is None:
            t.llm_first_sentence_at = now
            t.vendor_waits.append((t.llm_request_at, now))
        t.mark_once("tts_first_text_at", now)
        turn.last_tts_activity = now
        made = self._made(turn, sentence)
        if made is not None:
            self._play_made(turn, text, made)
            return
        if turn.premade:  # its line was evicted since `open`: say it live after all
            turn.premade = False
            await self._open_context(turn)
        turn.sentences.append(text)
        turn.sent_nonspace += nonspace(text)
        await self.tts.send_text(turn.context_id, text, flush=True)

    def _made(self, turn: AgentTurn, sentence: str) -> PremadeAudio | None:
        """The sentence's pre-made audio, if there is some and it can go out now: only once
        everything sent live before it has come back, or the order would change."""
        if self.premade is None or turn.aligned_nonspace < turn.sent_nonspace:
            return None
        if turn.alignment_missing:
            return None  # no telling whether the live audio before it is all here
        return self.premade.get(sentence)

    def _play_made(self, turn: AgentTurn, text: str, made: PremadeAudio) -> None:
        turn.sentences.append(text)
        # Counted as the alignment counts it, so that completeness is judged as for live audio.
        turn.sent_nonspace += sum(1 for c in made.alignment.chars if not c.isspace())
        if turn.timings.tts_first_byte_at is None:
            turn.timings.premade_audio = True  # the turn's first sound came from memory
        self.add_audio(turn, made.audio, made.alignment)

    async def text_done(self, turn: AgentTurn) -> bool:
        """All of the turn's text was sent. False: it had none (nothing will play)."""
        turn.text_complete = True
        turn.last_tts_activity = self._now()
        if not turn.sentences:
            await self.tts.close_context(turn.context_id)
            return False
        self._check_complete(turn)
        return True

    def clear(self, turn: AgentTurn) -> None:
        """The turn is over (cut or done): its context goes, late audio is ignored."""
        self.turns.pop(turn.context_id, None)
        self._close_context(turn)

    def forget(self, turn: AgentTurn) -> None:
        self.turns.pop(turn.context_id, None)

    # ---- audio out --------------------------------------------------------------------------
    def on_event(self, event: TtsEvent) -> None:
        if isinstance(event, TtsFailed):
            self._on_failure(event.error)
            return
        if isinstance(event, TtsContextLost):
            for ctx in event.context_ids:
                turn = self.turns.get(ctx)
                if turn is not None and not turn.cancelled and not turn.tts_done:
                    self._background(self._resend(turn))
            return
        turn = self.turns.get(event.context_id)
        if turn is None or turn.cancelled:
            return
        turn.last_tts_activity = self._now()
        if isinstance(event, TtsAudio):
            if turn.tts_done and not self.buffer.reopen_tail(turn):
                return  # trailing audio after the turn's end mark went out: nothing to add
            self.add_audio(turn, event.audio, event.alignment)
        elif isinstance(event, TtsDone):
            self._done(turn)

    def add_audio(self, turn: AgentTurn, audio: bytes, alignment: Alignment | None) -> None:
        t = turn.timings
        if t.tts_first_byte_at is None:
            t.tts_first_byte_at = self._now()
            if t.tts_first_text_at is not None:
                t.vendor_waits.append((t.tts_first_text_at, t.tts_first_byte_at))
        if alignment is not None:
            base = turn.audio_ms_received
            mids = turn.char_mids
            end = turn.aligned_end_ms
            for c, s, d in zip(
                alignment.chars, alignment.start_ms, alignment.duration_ms, strict=False
            ):
                end = base + s + d
                if not c.isspace():
                    mids.append(base + s + d / 2)
            turn.aligned_end_ms = max(turn.aligned_end_ms, end)
            turn.aligned_chars += len(alignment.chars)
            turn.aligned_nonspace += sum(1 for c in alignment.chars if not c.isspace())
        else:
            turn.alignment_missing = True
        turn.audio_ms_received += len(audio) / 8.0
        frames = turn.chunker.push(audio)
        if frames:
            self.buffer.push_audio(turn, frames)
        self.buffer.push_mark(turn)
        self._wake()
        if turn.tts_done:
            self._done(turn, force=True)
        else:
            self._check_complete(turn)

    def check_stall(self, turn: AgentTurn, now: float, stall_s: float) -> bool:
        """Text complete, no audio for `stall_s`: the turn's audio is done. True if it stalled."""
        if (
            turn.text_complete
            and not turn.tts_done
            and not turn.cancelled
            and now - turn.last_tts_activity > stall_s
        ):
            self._done(turn)
            return True
        return False

    def _check_complete(self, turn: AgentTurn) -> None:
        """Has all of the turn's text come back as audio?

        The alignment tells: once it covers every character we sent, the turn's audio is
        complete and its context is closed. Without alignment we close the context and wait
        for `isFinal` (the API keeps flushing text already flushed). A `close_context` is never
        sent earlier, because the simulator drops audio not yet sent on close (see docs).
        """
        if not turn.text_complete or turn.tts_done or turn.cancelled:
            return
        if turn.alignment_missing:
            if not turn.close_sent:
                turn.close_sent = True
                self._close_context(turn)
            return
        if (
            turn.aligned_nonspace >= turn.sent_nonspace
            and turn.audio_ms_received + FRAME_MS >= turn.aligned_end_ms
        ):
            self._done(turn)
            if not turn.premade:
                turn.close_sent = True
                self._close_context(turn)

    def _done(self, turn: AgentTurn, *, force: bool = False) -> None:
        # An isFinal before all text went out can only be a server-side close: ignore it (the
        # stall watchdog or the resend path deals with the turn).
        if not force and (turn.tts_done or not turn.text_complete):
            return
        turn.tts_done = True
        tail = turn.chunker.flush()
        if tail is not None:
            self.buffer.push_audio(turn, tail)
        self.buffer.push_mark(turn, end=True)
        self._wake()

    def _close_context(self, turn: AgentTurn) -> None:
        if not turn.premade:
            self._background(_quietly(self.tts.close_context(turn.context_id)))

    async def _resend(self, turn: AgentTurn) -> None:
        """The TTS socket dropped mid-turn: speak the not-yet-synthesized rest in a new context."""
        if turn.resends >= 2:
            self._on_failure("context lost repeatedly")
            return
        turn.resends += 1
        sent = " ".join(turn.sentences)
        remainder = (
            unspoken_rest(sent, turn.aligned_nonspace) if turn.aligned_chars else sent.strip()
        )
        old = turn.context_id
        turn.context_id = f"{old.split('~')[0]}~{turn.resends}"
        self.turns.pop(old, None)
        self.turns[turn.context_id] = turn
        try:
            await self.tts.open_context(turn.context_id)
            if remainder:
                await self.tts.send_text(turn.context_id, remainder, flush=True)
        except TtsUnavailable as exc:
            self._on_failure(str(exc))


async def _quietly(coro: Awaitable[Any]) -> None:
    with contextlib.suppress(Exception):
        await coro


def unspoken_rest(text: str, synthesized_nonspace: int) -> str:
    """What of `text` is left after its first `synthesized_nonspace` non-space characters came
    back as audio, from the start of the word they end in: a word cut mid-way is said again
    whole. Counted without spaces, because the alignment's spacing between generations is not
    our text's."""
    if synthesized_nonspace <= 0:
        return text.strip()
    seen = 0
    for i, c in enumerate(text):
        if c.isspace():
            continue
        seen += 1
        if seen == synthesized_nonspace:
            cut = i + 1
            if cut < len(text) and not text[cut].isspace():
                cut = text.rfind(" ", 0, cut) + 1  # mid-word: back to its start
            return text[cut:].strip()
    return ""
