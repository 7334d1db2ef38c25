"""Turn-taking and barge-in policy: pure, no I/O, no clock of its own.

The session feeds it what the local VAD and Deepgram observe and what the agent's output is
doing; it answers with actions. Rules:

- The debtor's turn ends on Deepgram `speech_final`, on `UtteranceEnd`, or on the final that
  answers our own `Finalize` (sent when the local VAD hears the debtor stop: faster than waiting
  for Deepgram's endpointing).
- The agent never *starts* audio while the debtor is speaking: `can_speak()` gates output on the
  local VAD and on unfinished Deepgram speech (interim words not yet final).
- Debtor speech while the agent is speaking becomes a barge-in only once confirmed: at least
  `min_speech_ms` of voiced audio, or at least `min_words` transcribed words that are not just a
  backchannel ("mm-hmm"). A cough reaches neither.
- Confirmed debtor speech while a reply is still being prepared (no audio out yet) means the
  debtor had not finished: the pending reply is dropped and the debtor's turn continues.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

BACKCHANNELS = frozenset(
    {"mm", "mhm", "mmhm", "mm-hmm", "uh-huh", "uhhuh", "hmm", "uh", "um", "ah", "oh", "huh"}
)
_WORD_RE = re.compile(r"[\w'-]+")


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD_RE.findall(text)]


def is_backchannel(text: str) -> bool:
    ws = words(text)
    return bool(ws) and all(w in BACKCHANNELS for w in ws)


def substantive_words(text: str) -> int:
    return sum(1 for w in words(text) if w not in BACKCHANNELS)


class AgentPhase(Enum):
    IDLE = "idle"  # nothing queued or playing
    THINKING = "thinking"  # reply being prepared, no audio sent yet
    SPEAKING = "speaking"  # audio sent and not yet fully played


@dataclass(frozen=True)
class SendFinalize:
    """Ask Deepgram to finalize now (the local VAD heard the debtor stop)."""


@dataclass(frozen=True)
class StartEarly:
    """The debtor paused (not yet the end of speech): the reply's model request may start on
    the words so far, speculatively (session/early.py)."""


@dataclass(frozen=True)
class StartResponse:
    """The debtor's turn ended with this text; prepare the agent's reply."""

    text: str


@dataclass(frozen=True)
class Interrupt:
    """Confirmed barge-in: stop LLM/TTS, `clear` Twilio, cut the agent turn to what was heard."""

    onset_ms: float | None
    reason: str


@dataclass(frozen=True)
class CancelPending:
    """The debtor kept talking before any reply audio went out: drop the pending reply."""

    reason: str


Action = SendFinalize | StartEarly | StartResponse | Interrupt | CancelPending


class TurnPolicy:
    def __init__(self, min_speech_ms: int = 200, min_words: int = 1) -> None:
        self.min_speech_ms = min_speech_ms
        self.min_words = min_words
        self.phase = AgentPhase.IDLE
        self.user_vad = False  # local VAD says the debtor is speaking
        self.stt_active = False  # Deepgram has interim words not yet finalized
        self.onset_ms: float | None = None
        self.voiced_ms = 0
        self.pending: list[str] = []  # finals of the debtor turn not yet answered
        self.finalize_sent = False
        self._speech_confirmed = False  # current debtor speech already acted upon
        self.interrupted = False  # the agent was cut off and has not answered since
        self.cancellable = True  # whether debtor speech may drop the reply being prepared
        # A reply was dropped because the debtor kept talking; its words are already in the
        # conversation, so the next end of turn must answer even if no new words arrive.
        self.reply_dropped = False

    # ---- gate ---------------------------------------------------------------------------
    def can_speak(self) -> bool:
        return not self.user_vad and not self.stt_active

    # ---- agent side -------------------------------------------------------------------
    def response_started(self, *, cancellable: bool = True) -> None:
        """A reply is being prepared. The greeting is not cancellable: it waits (gated)."""
        self.phase = AgentPhase.THINKING
        self.cancellable = cancellable

    def audio_started(self) -> None:
        if self.phase is AgentPhase.THINKING:
            self.phase = AgentPhase.SPEAKING

    def response_finished(self) -> None:
        """Reply fully played (last mark back), cancelled, or produced no audio."""
        self.phase = AgentPhase.IDLE

    # ---- local VAD ---------------------------------------------------------------------
    def vad_start(self, onset_ms: float) -> list[Action]:
        self.user_vad = True
        self.onset_ms = onset_ms
        self.voiced_ms = 0
        self.finalize_sent = False
        self._speech_confirmed = False
        return []

    def vad_voiced(self, voiced_ms: int) -> list[Action]:
        self.voiced_ms = voiced_ms
        if voiced_ms >= self.min_speech_ms:
            return self._confirmed_speech("vad")
        return []

    def vad_pause(self) -> list[Action]:
        return [] if self.finalize_sent else [StartEarly()]

    def vad_end(self) -> list[Action]:
        self.user_vad = False
        if self.finalize_sent:
            return []
        self.finalize_sent = True
        return [SendFinalize()]

    # ---- Deepgram ------------------------------------------------------------------------
    def stt_interim(self, text: str) -> list[Action]:
        if not words(text):
            return []
        self.stt_active = True
        if substantive_words(text) >= self.min_words:
            return self._confirmed_speech("words")
        return []

    def stt_final(self, text: str, speech_final: bool, from_finalize: bool) -> list[Action]:
        actions: list[Action] = []
        self.stt_active = False
        text = text.strip()
        if text:
            if self.phase is AgentPhase.SPEAKING and not self._speech_confirmed:
                if is_backchannel(text) or substantive_words(text) < self.min_words:
                    # "mm-hmm" over the agent: acknowledged, not a turn.
                    return []
                actions += self._confirmed_speech("final")
            elif substantive_words(text) >= self.min_words:
                actions += self._confirmed_speech("final")
            self.pending.append(text)
        if speech_final or from_finalize or (self.finalize_sent and not self.user_vad):
            actions += self._end_of_turn()
        return actions

    def utterance_end(self) -> list[Action]:
        if self.user_vad:
            return []
        return self._end_of_turn()

    def silence_timeout(self) -> list[Action]:
        """The line stayed quiet for a while after the debtor's last sound (session timer).

        After a barge-in that produced no words (a long cough, noise), the agent resumes rather
        than waiting forever: an empty StartResponse means "continue without a new debtor turn".
        """
        if self.phase is not AgentPhase.IDLE or self.user_vad or self.stt_active:
            return []
        if self.pending or self.reply_dropped:
            return self._end_of_turn()
        if self.interrupted:
            self.interrupted = False
            self.phase = AgentPhase.THINKING
            self.cancellable = True
            return [StartResponse("")]
        return []

    # ---- internals ---------------------------------------------------------------------
    def _confirmed_speech(self, reason: str) -> list[Action]:
        if self._speech_confirmed:
            return []
        if self.phase is AgentPhase.SPEAKING:
            self._speech_confirmed = True
            self.interrupted = True
            self.phase = AgentPhase.IDLE
            return [Interrupt(self.onset_ms, reason)]
        if self.phase is AgentPhase.THINKING and self.cancellable:
            self._speech_confirmed = True
            self.phase = AgentPhase.IDLE
            self.reply_dropped = True
            return [CancelPending(reason)]
        return []

    def _end_of_turn(self) -> list[Action]:
        if not self.pending and not self.reply_dropped:
            return []
        if self.phase is not AgentPhase.IDLE:
            # A reply is already in flight for earlier words; the new words wait for the next
            # end of turn (they arrived without confirmed speech, e.g. a late final).
            return []
        # Empty text after a dropped reply: answer what the conversation already holds.
        text = " ".join(self.pending)
        self.reply_dropped = False
        self.pending = []
        self.phase = AgentPhase.THINKING
        self.cancellable = True
        self.interrupted = False
        self._speech_confirmed = False
        self.finalize_sent = False
        return [StartResponse(text)]
