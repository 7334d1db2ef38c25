"""The call's transcript as the debtor experienced it: pure, no clock of its own.

Entries are the generated `TranscriptTurn` (specs/schemas/transcript_turn.json), the same model
the API and the `call.completed` webhook publish. Ordering rules:

- An agent turn is written when it ends (played in full, cut by a barge-in, or cut by the end of
  the call) with only the words the debtor heard; its times are those of its audio.
- A debtor who goes on after a pause that dropped our reply made one turn, not two: the new
  words join the last entry when that entry is the debtor's.
- The callee's "Hello?" that came before the greeting played is written before the greeting.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import overload

from generated.conversation_state import ConversationState
from generated.speaker import Speaker
from generated.transcript_turn import TranscriptTurn


class Transcript(Sequence[TranscriptTurn]):
    def __init__(self) -> None:
        self.turns: list[TranscriptTurn] = []

    def __len__(self) -> int:
        return len(self.turns)

    def __iter__(self) -> Iterator[TranscriptTurn]:
        return iter(self.turns)

    @overload
    def __getitem__(self, index: int) -> TranscriptTurn: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[TranscriptTurn]: ...

    def __getitem__(self, index: int | slice) -> TranscriptTurn | Sequence[TranscriptTurn]:
        return self.turns[index]

    def add_debtor(
        self, text: str, state: str, started_at: datetime, ended_at: datetime, *, merge: bool
    ) -> None:
        """The debtor's words of one turn; with `merge`, words that continue the last debtor
        entry (no agent turn between) extend it."""
        last = self.turns[-1] if self.turns else None
        if merge and last is not None and last.speaker is Speaker.DEBTOR:
            last.text = f"{last.text} {text}"
            last.ended_at = ended_at
            return
        self._append(Speaker.DEBTOR, text, state, started_at, ended_at, interrupted=False)

    def add_agent(
        self, text: str, state: str, started_at: datetime, ended_at: datetime, *, interrupted: bool
    ) -> int:
        """What the debtor heard of one agent turn; returns its index."""
        self._append(Speaker.AGENT, text, state, started_at, max(ended_at, started_at), interrupted)
        return len(self.turns) - 1

    def _append(
        self,
        speaker: Speaker,
        text: str,
        state: str,
        started_at: datetime,
        ended_at: datetime,
        interrupted: bool,
    ) -> None:
        # Built without validation: every field comes from our own code, and a pydantic
        # validation per turn would run on the event loop at every turn of every call.
        self.turns.append(
            TranscriptTurn.model_construct(
                index=len(self.turns),
                speaker=speaker,
                text=text,
                state=ConversationState(state),
                started_at=started_at,
                ended_at=ended_at,
                interrupted=interrupted,
            )
        )
