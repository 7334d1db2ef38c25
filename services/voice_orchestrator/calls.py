"""Database access for the live call: facts for the conversation, status moves, heartbeat and
transcript checkpoints.

Every status change is a conditional UPDATE (`WHERE status IN (...)`), so redelivered messages,
out-of-order Twilio callbacks and two instances racing can never move a call backwards or end it
twice.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from generated.call_dispatch import CallDispatch
from generated.call_step import CallStep
from services.common.call_chain import campaign_rules_of
from services.common.call_steps import StepBuffer, StepRecord, record_many, record_step
from services.common.logging import get_logger
from services.common.models import Call, CallTurn, Debtor
from services.common.negotiation import rules_for
from services.common.prompt_variants import DEFAULT_VARIANT
from services.common.settings import Settings
from services.common.verification_facts import account_last4
from services.common.zones import conversation_zone
from services.voice_orchestrator.core import CallFacts, DelinquencyStage
from services.voice_orchestrator.premade import PremadeLines
from services.voice_orchestrator.vendors.elevenlabs import ElevenLabsTts

LIVE = ("dispatched", "dialing", "ringing", "in_progress")


log = get_logger(__name__)


class SnapshotCache:
    """Dispatch snapshots of calls placed by this instance (the debtor as frozen at dispatch).

    Another instance receiving the media stream falls back to the debtors table.
    """

    def __init__(self, limit: int = 10_000) -> None:
        self._items: OrderedDict[str, CallDispatch] = OrderedDict()
        self.limit = limit

    def put(self, msg: CallDispatch) -> None:
        self._items[str(msg.call_id)] = msg
        while len(self._items) > self.limit:
            self._items.popitem(last=False)

    def get(self, call_id: str) -> CallDispatch | None:
        return self._items.get(call_id)

    def pop(self, call_id: str) -> None:
        self._items.pop(call_id, None)


@dataclass
class _Warm:
    tts: ElevenLabsTts | None
    premade: PremadeLines | None
    expiry: asyncio.TimerHandle | None = None


class WarmCalls:
    """What was opened for a call when it was dialed (its TTS socket, its pre-made lines), held
    until its media stream takes it (`take_tts`, `take_premade`).

    Closed if the call ends without a session (`discard`) or if nothing took it `ttl_s` after
    the dial: a call whose media stream never connects here (unanswered, or streamed to another
    instance) keeps no socket open.
    """

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._items: dict[str, _Warm] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._items

    def put(self, call_id: str, *, tts: ElevenLabsTts | None, premade: PremadeLines | None) -> None:
        self.discard(call_id)  # a redelivered dispatch dials again: the first one's go
        entry = _Warm(tts, premade)
        entry.expiry = asyncio.get_running_loop().call_later(
            self.ttl_s, self._expire, call_id, entry
        )
        self._items[call_id] = entry

    def take_tts(self, call_id: str) -> ElevenLabsTts | None:
        entry = self._items.get(call_id)
        if entry is None:
            return None
        tts, entry.tts = entry.tts, None
        self._drop_if_empty(call_id, entry)
        return tts

    def take_premade(self, call_id: str) -> PremadeLines | None:
        entry = self._items.get(call_id)
        if entry is None:
            return None
        premade, entry.premade = entry.premade, None
        self._drop_if_empty(call_id, entry)
        return premade

    def discard(self, call_id: str) -> None:
        """The call ended without (or before) a session here: close what it had."""
        entry = self._items.pop(call_id, None)
        if entry is not None:
            self._close(entry)

    def close_later(self, tts: ElevenLabsTts) -> None:
        """Close a socket in the background (one not handed to any session)."""
        self._close(_Warm(tts, None))

    async def aclose(self) -> None:
        for call_id in list(self._items):
            self.discard(call_id)
        await asyncio.gather(*self._closing, return_exceptions=True)

    def _expire(self, call_id: str, entry: _Warm) -> None:
        if self._items.get(call_id) is entry:
            log.info("warm_call_expired", call_id=call_id)
            self.discard(call_id)

    def _drop_if_empty(self, call_id: str, entry: _Warm) -> None:
        if entry.tts is None and entry.premade is None:
            if entry.expiry is not None:
                entry.expiry.cancel()
            self._items.pop(call_id, None)

    def _close(self, entry: _Warm) -> None:
        if entry.expiry is not None:
            entry.expiry.cancel()
        task = asyncio.create_task(_close_warm(entry), name="warm-close")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


async def _close_warm(entry: _Warm) -> None:
    if entry.tts is not None:
        try:
            await entry.tts.close()
        except Exception as exc:
            log.info("warm_tts_close_failed", error=repr(exc))
    if entry.premade is not None:
        await entry.premade.aclose()


def facts_from_dispatch(msg: CallDispatch, settings: Settings) -> CallFacts:
    d = msg.debtor
    return CallFacts(
        call_id=str(msg.call_id),
        debtor_name=d.name,
        company_name=settings.company_name,
        agent_name=settings.agent_name,
        stage=DelinquencyStage(msg.stage.value),
        balance_minor=d.amount_owed.amount_minor,
        currency=d.amount_owed.currency,
        due_date=d.due_date,
        timezone=d.timezone,
        account_reference=d.account_reference or "",
        # Right-party verification facts: the core compares them, the model never sees them.
        date_of_birth=d.date_of_birth,
        postal_code=d.postal_code,
        account_last4=account_last4(d.account_reference),
        prompt_variant=msg.prompt_variant or DEFAULT_VARIANT,
        # The scheduler resolved the campaign's or the stage's terms at dispatch; an older
        # dispatch without them negotiates within the stage's.
        rules=msg.negotiation_rules or rules_for(settings, msg.stage.value, None),
        callback_number=settings.company_callback_number,
    )


async def load_facts(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    cache: SnapshotCache,
    call_id: uuid.UUID,
) -> CallFacts | None:
    cached = cache.get(str(call_id))
    if cached is not None:
        return facts_from_dispatch(cached, settings)
    async with sessions() as session:
        row = (
            await session.execute(
                select(Call.stage, Call.prompt_variant, Debtor)
                .join(Debtor, Debtor.id == Call.debtor_id)
                .where(Call.id == call_id)
            )
        ).first()
        # No dispatch snapshot here (another instance took the dispatch, or this one
        # restarted): the terms as the scheduler resolved them, its campaign's or its stage's.
        campaign_rules = await campaign_rules_of(session, call_id) if row is not None else None
    if row is None:
        return None
    stage, variant, debtor = row
    return CallFacts(
        call_id=str(call_id),
        debtor_name=debtor.name,
        company_name=settings.company_name,
        agent_name=settings.agent_name,
        stage=DelinquencyStage(stage),
        balance_minor=debtor.amount_owed_minor,
        currency=debtor.currency,
        due_date=debtor.due_date,
        timezone=conversation_zone(debtor.timezone, debtor.phone),
        account_reference=debtor.account_reference or "",
        date_of_birth=debtor.date_of_birth,
        postal_code=debtor.postal_code,
        account_last4=account_last4(debtor.account_reference),
        prompt_variant=variant or DEFAULT_VARIANT,
        rules=rules_for(settings, stage, campaign_rules),
        callback_number=settings.company_callback_number,
    )


async def claim_media_session(
    sessions: async_sessionmaker[AsyncSession],
    call_id: uuid.UUID,
    call_sid: str,
    attempt: int,
) -> bool:
    """The media stream started: the call is in progress and has a live session.

    Only once per call (a session anywhere set `heartbeat_at`), only for the Twilio call we
    placed (the stream's `start` must carry the call's own CallSid) and only for its current
    dial (the stream URL's token was issued for `attempt`).
    """
    async with sessions() as session, session.begin():
        row = (
            await session.execute(
                update(Call)
                .where(
                    Call.id == call_id,
                    Call.status.in_(("dialing", "ringing", "in_progress")),
                    Call.twilio_call_sid == call_sid,
                    Call.dial_attempts == attempt,
                    Call.heartbeat_at.is_(None),
                )
                .values(
                    status="in_progress",
                    answered_at=func.coalesce(Call.answered_at, func.now()),
                    heartbeat_at=func.now(),
                    updated_at=func.now(),
                )
                .returning(Call.id)
            )
        ).first()
    return row is not None


def turn_rows(call_id: uuid.UUID, entries: Sequence[Any]) -> list[dict[str, Any]]:
    """`call_turns` rows for transcript entries (generated `TranscriptTurn`), in spoken order."""
    return [
        {
            "call_id": call_id,
            "index": i,
            "speaker": e.speaker,
            "text": e.text,
            "state": e.state,
            "interrupted": e.interrupted,
            "started_at": e.started_at,
            "ended_at": e.ended_at,
        }
        for i, e in enumerate(entries)
    ]


async def replace_turns(
    session: AsyncSession, transcripts: Mapping[uuid.UUID, Sequence[Any]]
) -> None:
    """Write each call's transcript as it stands, replacing an earlier checkpoint (entries can
    be reordered or marked interrupted after they were first written).

    One DELETE and one batched INSERT for all the calls: when many calls take their turn in
    the same second, a statement pair per call kept the event loop busy exactly then."""
    if not transcripts:
        return
    await session.execute(
        delete(CallTurn).where(CallTurn.call_id.in_(list(transcripts))),
        execution_options={"synchronize_session": False},  # no CallTurn objects are loaded
    )
    rows = [row for cid, entries in transcripts.items() for row in turn_rows(cid, entries)]
    if rows:
        # executemany: batched by insertmanyvalues, so no statement nears Postgres's
        # 32767-parameter limit however many calls are checkpointed at once.
        await session.execute(insert(CallTurn), rows)


def _signature(entries: Sequence[Any]) -> int:
    return hash(tuple((e.speaker, e.text, e.state, e.interrupted, e.ended_at) for e in entries))


class HeartbeatBatcher:
    """Coalesces every live call's heartbeat, and a checkpoint of its transcript, into one
    transaction per interval.

    A per-call UPDATE needed one pooled connection per call per beat: at 200 calls the pool ran
    dry (dispatches and finalizes then timed out). One statement for all calls does not grow.
    The transcript checkpoint means a call whose orchestrator dies keeps what was said up to the
    last second; finalize replaces it with the final transcript. The call's steps buffered in
    memory (`CallSession.steps`) go in the same transaction: readable (and kept) within about a
    second, and never written on the call's real-time path.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], interval_s: float = 1.0):
        self.sessions = sessions
        self.interval_s = interval_s
        self.pending: set[uuid.UUID] = set()
        self.transcripts: dict[uuid.UUID, Sequence[Any]] = {}
        self.steps: dict[uuid.UUID, StepBuffer] = {}
        self._saved: dict[uuid.UUID, int] = {}

    async def beat(self, call_id: uuid.UUID) -> None:
        self.pending.add(call_id)

    def track(
        self, call_id: uuid.UUID, transcript: Sequence[Any], steps: StepBuffer | None = None
    ) -> None:
        """Checkpoint this live list (the session appends to it) while the call is live, and
        store what `steps` holds at each flush."""
        self.transcripts[call_id] = transcript
        if steps is not None:
            self.steps[call_id] = steps

    def untrack(self, call_id: uuid.UUID) -> None:
        self.transcripts.pop(call_id, None)
        self.steps.pop(call_id, None)
        self._saved.pop(call_id, None)

    async def flush(self) -> None:
        changed = {
            cid: (sig, list(entries))
            for cid, entries in self.transcripts.items()
            if entries and self._saved.get(cid) != (sig := _signature(entries))
        }
        # Taken now; a call that ends meanwhile has its later steps stored by finalize (a step
        # is in one of the two lists, never both). Written whatever the call's status.
        steps: dict[uuid.UUID, list[StepRecord]] = {
            cid: buf.take() for cid, buf in self.steps.items() if len(buf)
        }
        if not self.pending and not changed and not steps:
            return
        ids, self.pending = self.pending, set()
        live: set[uuid.UUID] = set()
        try:
            async with self.sessions() as session, session.begin():
                await record_many(session, steps)
                if ids:
                    await session.execute(
                        update(Call)
                        .where(Call.id.in_(ids), Call.status == "in_progress")
                        .values(heartbeat_at=func.now())
                    )
                if changed:
                    # Locked like finalize locks it: a call that just ended is left to finalize.
                    live = set(
                        await session.scalars(
                            select(Call.id)
                            .where(Call.id.in_(list(changed)), Call.status == "in_progress")
                            .order_by(Call.id)
                            .with_for_update()
                        )
                    )
                    await replace_turns(
                        session,
                        {cid: entries for cid, (_, entries) in changed.items() if cid in live},
                    )
            for cid, (sig, _) in changed.items():
                if cid in live:
                    self._saved[cid] = sig
        except Exception:
            self.pending |= ids  # next round; a missed beat is not worth ending calls
            for cid, items in steps.items():  # next round (or finalize), in their order
                if cid in self.steps:
                    self.steps[cid].items[:0] = items
            raise

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.flush()
            except Exception as exc:
                log.warning("heartbeat_flush_failed", error=repr(exc))


async def mark_ringing(session: AsyncSession, call_id: uuid.UUID) -> None:
    moved = await session.scalar(
        update(Call)
        .where(Call.id == call_id, Call.status == "dialing")
        .values(status="ringing", updated_at=func.now())
        .returning(Call.dial_attempts)
    )
    if moved is not None:
        await record_step(session, call_id, CallStep.RINGING, once_key=f"ringing:{moved}")


async def mark_answered(session: AsyncSession, call_id: uuid.UUID) -> None:
    moved = await session.scalar(
        update(Call)
        .where(Call.id == call_id, Call.status.in_(("dialing", "ringing")))
        .values(
            status="in_progress",
            answered_at=func.coalesce(Call.answered_at, func.now()),
            updated_at=func.now(),
        )
        .returning(Call.id)
    )
    if moved is not None:
        await record_step(session, call_id, CallStep.ANSWERED, once_key="answered")
