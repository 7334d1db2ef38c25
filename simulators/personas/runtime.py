"""Runs a persona script against the call's 20 ms clock.

Pure and synchronous: the media-stream tick calls :meth:`PersonaRuntime.tick` once per frame with
the stream time and whether agent audio played in that frame, and gets back the debtor's next
160 μ-law bytes (or ``None`` for silence). No task per call beyond the tick loop itself, so a
hundred calls cost a hundred cheap method calls every 20 ms.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from simulators.common.audio import FRAME_BYTES, SILENCE_BYTE
from simulators.common.speech import Speech
from simulators.personas import Line, Persona


@dataclass(slots=True)
class SpokenLine:
    index: int  # index in persona.lines, or -1 for an ad-hoc line from the control API
    text: str
    start_ms: int
    end_ms: int | None = None
    cut_off: bool = False  # the call ended while the line was being spoken


class PersonaRuntime:
    def __init__(
        self,
        persona: Persona,
        speeches: list[Speech | None],
        on_line_start: Callable[[SpokenLine, Speech], None] | None = None,
        on_line_end: Callable[[SpokenLine], None] | None = None,
        heard: Callable[[str, int], bool] | None = None,
    ) -> None:
        self.persona = persona
        # heard(words, since_ms): did the agent say `words` in audio played since `since_ms`?
        # Decides a line with `if_asked` (no callback: such lines are never spoken).
        self.heard = heard
        self.speeches = speeches  # filled in by the caller's prefetch as synthesis completes
        self.on_line_start = on_line_start
        self.on_line_end = on_line_end
        self.next_index = 0
        self.spoken: list[SpokenLine] = []
        self.hangup = False
        self.hangup_reason = ""
        self._current: SpokenLine | None = None
        self._audio = b""
        self._offset = 0
        self._adhoc: list[tuple[str, Speech]] = []
        self._prev_end_ms = 0
        self._agent_last_ms: int | None = None  # last frame with agent audio
        self._agent_heard_since_line = False
        self._agent_start_ms: int | None = None  # first agent frame after our last line

    @property
    def speaking(self) -> bool:
        return self._current is not None

    def say(self, text: str, speech: Speech) -> None:
        """Speak an ad-hoc line as soon as the current one (if any) is finished."""
        self._adhoc.append((text, speech))

    def _script_done(self) -> bool:
        return self.next_index >= len(self.persona.lines)

    def _due(self, line: Line, ms: int, agent_playing: bool) -> bool:
        if line.timeout_ms is not None and ms >= self._prev_end_ms + line.timeout_ms:
            return True
        if line.after == "answer":
            return ms >= line.delay_ms
        if line.after == "line_end":
            return ms >= self._prev_end_ms + line.delay_ms
        if line.after == "agent_start":
            return self._agent_start_ms is not None and ms >= self._agent_start_ms + line.delay_ms
        # agent_done: the agent said something after our last line and has been quiet since.
        return (
            self._agent_heard_since_line
            and not agent_playing
            and self._agent_last_ms is not None
            and ms - self._agent_last_ms >= line.delay_ms
        )

    def _asked(self, words: str) -> bool:
        return self.heard is not None and self.heard(words, self._prev_end_ms)

    def _start(self, index: int, text: str, speech: Speech, ms: int) -> None:
        self._current = SpokenLine(index, text, ms)
        self._audio = speech.audio
        self._offset = 0
        self.spoken.append(self._current)
        if self.on_line_start:
            self.on_line_start(self._current, speech)

    def _end(self, ms: int, cut_off: bool = False) -> None:
        line = self._current
        if line is None:
            return
        line.end_ms = ms
        line.cut_off = cut_off
        self._current = None
        self._prev_end_ms = ms
        self._agent_heard_since_line = False
        self._agent_start_ms = None
        if self.on_line_end:
            self.on_line_end(line)

    def _maybe_hang_up(self, ms: int) -> None:
        p = self.persona
        if ms >= p.max_call_s * 1000:
            self.hangup, self.hangup_reason = True, "max_call_s"
        elif not self._script_done() or p.loop_from is not None:
            return
        elif p.hangup == "after_last_line" and ms >= self._prev_end_ms + p.hangup_delay_ms:
            self.hangup, self.hangup_reason = True, "after_last_line"
        elif (
            p.hangup == "after_agent_done"
            and self._agent_heard_since_line
            and self._agent_last_ms is not None
            and ms - self._agent_last_ms >= p.hangup_delay_ms
        ):
            self.hangup, self.hangup_reason = True, "after_agent_done"

    def tick(self, ms: int, agent_playing: bool) -> bytes | None:
        """Advance one 20 ms frame at stream time ``ms``; return debtor audio or None."""
        if agent_playing:
            if not self.speaking:
                if not self._agent_heard_since_line:
                    self._agent_start_ms = ms
                self._agent_heard_since_line = True
            self._agent_last_ms = ms + 20
        if self.hangup:
            return None
        if not self.speaking:
            if self._adhoc:
                text, adhoc = self._adhoc.pop(0)
                self._start(-1, text, adhoc, ms)
            elif not self._script_done():
                line = self.persona.lines[self.next_index]
                ready = self.speeches[self.next_index]  # None until synthesized
                if ready is not None and self._due(line, ms, agent_playing):
                    if line.if_asked is None or self._asked(line.if_asked):
                        self._start(self.next_index, line.text, ready, ms)
                    # else: not asked, so not said; the next line is considered next frame
                    self.next_index += 1
                    if self._script_done() and self.persona.loop_from is not None:
                        self.next_index = self.persona.loop_from
            if not self.speaking:
                self._maybe_hang_up(ms)
                return None
        frame = self._audio[self._offset : self._offset + FRAME_BYTES]
        self._offset += FRAME_BYTES
        if self._offset >= len(self._audio):
            self._end(ms + len(frame) * 1000 // 8000)
        if len(frame) < FRAME_BYTES:
            frame += bytes([SILENCE_BYTE]) * (FRAME_BYTES - len(frame))
        return frame

    def finish(self, ms: int) -> None:
        """The call ended: close the line being spoken, if any."""
        if self._current is not None:
            self._end(ms, cut_off=True)
