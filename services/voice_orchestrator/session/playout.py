"""Playout: the agent's outbound audio as a pure buffer, and what the debtor heard of it.

No I/O and no clock of its own: the pacer (pacer.py) asks it what to send next and tells it
what went out when; times are stream milliseconds. Twilio plays what we send in order and
echoes our marks as it reaches them; a `clear` drops everything it holds unplayed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from services.voice_orchestrator.media.framing import PlayoutClock
from services.voice_orchestrator.media.mulaw import FRAME_BYTES, FRAME_MS
from services.voice_orchestrator.media.recorder import StereoRecorder

from .turn import AgentTurn, OutItem, Segment, nonspace

RECENT_ITEMS = 64  # audio messages and marks: well beyond what Twilio holds unplayed (`lead_ms`)
BYTES_PER_MS = FRAME_BYTES / FRAME_MS  # μ-law at 8 kHz


def frames_started(start_ms: float, now_ms: float) -> int:
    """Of audio that starts playing at `start_ms`, how many 20 ms frames have started by
    `now_ms` (a frame starting exactly at `now_ms` has not)."""
    return max(0, int(-(-(now_ms - start_ms) // FRAME_MS)))


class PlayoutBuffer:
    def __init__(self, recorder: StereoRecorder) -> None:
        self.recorder = recorder
        self.clock = PlayoutClock()
        self.out: deque[OutItem] = deque()
        self.marks: dict[str, OutItem] = {}
        # What went to Twilio lately, in order: (item, start ms for a frame, None for a mark).
        # A pause takes back the part Twilio had not played yet.
        self.recent: deque[tuple[OutItem, float | None]] = deque(maxlen=RECENT_ITEMS)
        self.pending_clear = False  # a `clear` must go out before anything else

    # ---- filling ----------------------------------------------------------------------------
    def push_audio(self, turn: AgentTurn, frames: bytes) -> None:
        self.out.append(OutItem(turn, audio=frames))

    def push_mark(self, turn: AgentTurn, *, end: bool = False) -> None:
        if end:
            self.out.append(OutItem(turn, mark=f"{turn.context_id}.end", end=True))
        else:
            turn.mark_seq += 1
            self.out.append(OutItem(turn, mark=f"{turn.context_id}.{turn.mark_seq}"))

    def reopen_tail(self, turn: AgentTurn) -> bool:
        """More audio after the turn was judged complete: take its end mark back if not sent."""
        for i, item in enumerate(self.out):
            if item.turn is turn and item.end:
                del self.out[i]
                return True
        return False

    def drop(self, turn: AgentTurn) -> None:
        """Forget the turn's queued audio and marks (cancelled)."""
        if any(item.turn is turn for item in self.out):
            self.out = deque(item for item in self.out if item.turn is not turn)

    # ---- sending ----------------------------------------------------------------------------
    def take_audio(self, turn: AgentTurn, now_ms: float, budget_bytes: int) -> bytes:
        """Up to `budget_bytes` of the turn's audio at the head of the queue, as far as it is
        here already (a turn's first audio never waits for more), scheduled from `now_ms`."""
        audio = bytearray()
        while len(audio) < budget_bytes and self.out:
            item = self.out[0]
            if item.turn is not turn or item.audio is None:
                break
            take = budget_bytes - len(audio)
            if len(item.audio) > take:
                sent = OutItem(turn, audio=item.audio[:take])
                item.audio = item.audio[take:]
            else:
                sent = self.out.popleft()
            assert sent.audio is not None
            start_ms = self.clock.schedule(now_ms, len(sent.audio) / BYTES_PER_MS)
            self._place(turn, sent.audio, start_ms)
            self.recent.append((sent, start_ms))
            audio += sent.audio
        turn.paused_at = None  # playing again
        return bytes(audio)

    def mark_sent(self, item: OutItem) -> None:
        assert item.mark is not None
        item.mark_offset_ms = item.turn.audio_ms_sent
        self.marks[item.mark] = item
        self.recent.append((item, None))

    def mark_echoed(self, name: str) -> OutItem | None:
        """Twilio reached a mark: the turn was heard up to it. The item, or None if unknown or
        echoed only because of our `clear`."""
        item = self.marks.pop(name, None)
        if item is None or item.turn.cancelled:
            return None
        item.turn.heard_ms_by_mark = max(item.turn.heard_ms_by_mark, item.mark_offset_ms)
        return item

    def _place(self, turn: AgentTurn, audio: bytes, start_ms: float) -> None:
        duration_ms = len(audio) / BYTES_PER_MS
        seg = turn.segments[-1] if turn.segments else None
        if seg is not None and abs(seg.stream_ms + seg.duration_ms - start_ms) < 1.0:
            seg.duration_ms += duration_ms
        else:
            turn.segments.append(Segment(turn.audio_ms_sent, start_ms, duration_ms))
        turn.audio_ms_sent += duration_ms
        self.recorder.agent_frame(start_ms, audio)
        if not turn.playing:
            turn.playing = True
            turn.started_stream_ms = start_ms

    # ---- stopping ---------------------------------------------------------------------------
    def pause(self, turn: AgentTurn, now_ms: float) -> bool:
        """The debtor made a sound while the agent talks: silence the agent now (`clear`),
        before the policy has decided. What Twilio had queued but not played goes back to the
        front of our queue, so if it was only a cough the agent carries on without losing a
        word; a confirmed barge-in then drops it with the rest. False: nothing was unplayed."""
        recent = list(self.recent)
        first = next(
            (
                i
                for i, (item, start) in enumerate(recent)
                if item.turn is turn
                and item.audio is not None
                and start is not None
                and frames_started(start, now_ms) * FRAME_BYTES < len(item.audio)
            ),
            None,
        )
        if first is None:
            return False
        kept = recent[:first]
        back = [item for item, _ in recent[first:] if item.turn is turn]
        partial, start = recent[first]
        assert partial.audio is not None and start is not None
        cut = frames_started(start, now_ms) * FRAME_BYTES
        if cut:
            # Its first frames have started playing: they stay played, the rest goes back.
            kept.append((OutItem(turn, audio=partial.audio[:cut]), start))
            back[0] = OutItem(turn, audio=partial.audio[cut:])
        self.recent = deque(kept, maxlen=RECENT_ITEMS)
        self.pending_clear = True
        self._cleared(now_ms)
        turn.audio_ms_sent -= sum(len(item.audio) for item in back if item.audio) / BYTES_PER_MS
        _trim_segments(turn, now_ms)
        for item in back:
            if item.mark is not None:
                # Twilio echoes it for the clear, unplayed: forget it, send it again renamed.
                self.marks.pop(item.mark, None)
                turn.mark_seq += 1
                item.mark = f"{item.mark.rsplit('~', 1)[0]}~{turn.mark_seq}"
        self.out.extendleft(reversed(back))
        return True

    def cut(self, turn: AgentTurn, now_ms: float) -> str:
        """Stop the turn for good at `now_ms`: drop what is queued and return the words the
        debtor heard. The caller sends a `clear` if the turn was playing and not paused."""
        self.drop(turn)
        if not turn.playing:
            return ""
        self._cleared(now_ms)
        return heard_text(
            turn.char_mids, turn.text, self.heard_ms(turn, now_ms), turn.audio_ms_received
        )

    def _cleared(self, now_ms: float) -> None:
        self.clock.clear(now_ms)
        self.recorder.agent_cleared(now_ms)

    # ---- accounting -------------------------------------------------------------------------
    @staticmethod
    def heard_ms(turn: AgentTurn, now_ms: float) -> float:
        """Audio of `turn` played by `now_ms`: our playout clock, floored by returned marks.

        Our clock assumes playback starts when a frame is sent; Twilio starts it one network
        hop later, but our `clear` also arrives one hop later, so the two cancel out.
        """
        by_clock = sum(min(max(now_ms - s.stream_ms, 0.0), s.duration_ms) for s in turn.segments)
        return min(max(by_clock, turn.heard_ms_by_mark), turn.audio_ms_sent)

    @staticmethod
    def played_until_ms(turn: AgentTurn, default_ms: float) -> float:
        if not turn.segments:
            return default_ms
        last = turn.segments[-1]
        return last.stream_ms + last.duration_ms


def _trim_segments(turn: AgentTurn, now_ms: float) -> None:
    """Forget the frames that were to start at or after `now_ms` (they were cleared)."""
    kept: list[Segment] = []
    for seg in turn.segments:
        if seg.stream_ms >= now_ms:
            continue
        started_ms = frames_started(seg.stream_ms, now_ms) * FRAME_MS
        seg.duration_ms = min(seg.duration_ms, started_ms)
        kept.append(seg)
    turn.segments = kept


def heard_text(char_mids: Sequence[float], full_text: str, heard_ms: float, audio_ms: float) -> str:
    """The words of a turn the debtor heard by `heard_ms` of its audio.

    With alignment (ElevenLabs char timings, flattened over the turn: the middle of each
    non-space character) we count the characters whose middle was played and cut our own text
    after as many non-space characters (the alignment's own spacing between generations is not
    reliable); without it, the cut is in proportion to the audio played. A word counts as heard
    if at least half of it was.
    """
    if heard_ms <= 0 or not full_text:
        return ""
    words = full_text.split()
    if char_mids:
        heard = sum(1 for mid in char_mids if mid <= heard_ms)
    elif audio_ms > 0:
        heard = round(nonspace(full_text) * min(1.0, heard_ms / audio_ms))
    else:
        return ""
    kept: list[str] = []
    for word in words:
        if heard <= 0:
            break
        if heard >= len(word) or heard * 2 >= len(word):
            kept.append(word)
        heard -= len(word)
    return " ".join(kept)
