"""The schedule worker: claims due rows, re-checks holds and the rules, dispatches.

A pass claims due `pending` rows with `FOR UPDATE SKIP LOCKED` (so any number of scheduler
instances can run: a row is decided by exactly one) and, in the same transaction, either
dispatches (the call moves to `dispatched` and `call.dispatch` goes into the outbox), moves the
row to the rules' next allowed time, or skips it with a reason. A crash rolls the whole batch
back: the rows are pending again and nothing was published. Each row is decided in a savepoint,
so one row's conflict never undoes the others'.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from generated.call_dispatch import CallDispatch
from generated.call_step import CallStep
from generated.call_step_reason import CallStepReason
from services.call_scheduler.campaigns import CampaignPassStats, campaign_pass
from services.call_scheduler.decide import (
    ClaimView,
    Decision,
    Dispatch,
    Reschedule,
    Skip,
    decide_claim,
)
from services.call_scheduler.promises import judge_overdue_promises
from services.call_scheduler.stuck import reconcile_queued
from services.call_scheduler.terms import terms_for_dispatch
from services.call_scheduler.variants import variant_for_dispatch
from services.common.call_ending import end_unplaced
from services.common.call_steps import record_step
from services.common.calling_rules import RulesConfig, earliest_allowed
from services.common.logging import get_logger
from services.common.models import Call, Debtor, ScheduledCall
from services.common.outbox import add_event
from services.common.prompt_versions import prompt_version
from services.common.schedule_store import (
    active_holds,
    contact_of,
    intent,
    live_call_id,
    load_history,
    rules_config,
)
from services.common.settings import Settings
from services.common.snapshots import debtor_snapshot

log = get_logger(__name__)

SOURCE = "/call-scheduler"
CE_TYPE_DISPATCH = "call.dispatch"
_DISPATCH_NS = uuid.UUID("0b7b3c5e-6a0e-4f7e-9b51-4d2f0d7b8c11")


def dispatch_event_id(call_id: uuid.UUID) -> str:
    """One `call.dispatch` per call, even if a decision were somehow made twice (the outbox's
    ce-id is unique)."""
    return str(uuid.uuid5(_DISPATCH_NS, f"{CE_TYPE_DISPATCH}:{call_id}"))


@dataclass
class PassStats:
    dispatched: int = 0
    rescheduled: int = 0
    skipped: int = 0

    def add(self, other: PassStats) -> None:
        self.dispatched += other.dispatched
        self.rescheduled += other.rescheduled
        self.skipped += other.skipped

    @property
    def decided(self) -> int:
        return self.dispatched + self.rescheduled + self.skipped


class ScheduleWorker:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        after_commit: Callable[[], None] | None = None,
        cfg: RulesConfig | None = None,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.cfg = cfg or rules_config(settings)
        self.after_commit = after_commit  # wake the outbox relay
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Until cancelled: a pass whenever woken, and at least every tick."""
        while True:
            self._wake.clear()
            try:
                await self.run_due()
                await self.reconcile_queued()
                await self.judge_promises()
                await self.run_campaigns()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep scheduling after a transient DB error
                log.warning("schedule_pass_failed", error=repr(exc))
            try:
                await asyncio.wait_for(
                    self._wake.wait(), timeout=self.settings.scheduler_tick_seconds
                )
            except TimeoutError:
                pass

    async def run_due(self, now: datetime | None = None) -> PassStats:
        """Decide every row due at `now` (default: the clock at each batch)."""
        total = PassStats()
        while True:
            stats, claimed = await self._batch(now or datetime.now(UTC))
            total.add(stats)
            if claimed < self.settings.scheduler_batch_size:
                return total

    async def reconcile_queued(self, now: datetime | None = None) -> tuple[int, int]:
        async with self.sessions() as session, session.begin():
            result = await reconcile_queued(
                session, self.settings, now or datetime.now(UTC), self.settings.scheduler_batch_size
            )
        if any(result):
            self._notify()
            self.wake()  # a rescheduled call is due now
        return result

    async def judge_promises(self, now: datetime | None = None) -> int:
        """Broken / partially kept promises past due date + grace (services/call_scheduler/
        promises.py), batch by batch."""
        total = 0
        while True:
            async with self.sessions() as session, session.begin():
                n = await judge_overdue_promises(
                    session,
                    self.settings,
                    now or datetime.now(UTC),
                    self.settings.scheduler_batch_size,
                )
            total += n
            if n:
                self._notify()
            if n < self.settings.scheduler_batch_size:
                return total

    async def run_campaigns(self, now: datetime | None = None) -> CampaignPassStats:
        """Running campaigns' items into the schedule within their pacing, items following
        their calls, completion (services/call_scheduler/campaigns.py)."""
        stats = await campaign_pass(self.sessions, self.settings, now or datetime.now(UTC))
        if stats.changed:
            self._notify()
        if stats.released:
            self.wake()  # the released rows are due now
        return stats

    def _notify(self) -> None:
        if self.after_commit is not None:
            self.after_commit()

    async def _batch(self, now: datetime) -> tuple[PassStats, int]:
        stats = PassStats()
        async with self.sessions() as session, session.begin():
            rows = (
                await session.scalars(
                    select(ScheduledCall)
                    .where(ScheduledCall.status == "pending", ScheduledCall.not_before <= now)
                    .order_by(ScheduledCall.not_before, ScheduledCall.id)
                    .limit(self.settings.scheduler_batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for row in rows:
                decision = await self._decide_row(session, row, now)
                if isinstance(decision, Dispatch):
                    stats.dispatched += 1
                elif isinstance(decision, Reschedule):
                    stats.rescheduled += 1
                else:
                    stats.skipped += 1
        if stats.dispatched or stats.skipped:
            self._notify()
        return stats, len(rows)

    async def _decide_row(
        self, session: AsyncSession, row: ScheduledCall, now: datetime
    ) -> Decision:
        row_id, call_id = row.id, row.call_id
        try:
            async with session.begin_nested():
                decision = await self._apply(session, row, now)
            call_id = row.call_id  # a retry's or callback's call is created when placed
        except IntegrityError:
            # A call to the debtor was created meanwhile (one live call per debtor): this row's
            # dial is superseded.
            decision = Skip("superseded: the debtor has another call queued or in progress", False)
            await session.execute(
                update(ScheduledCall)
                .where(ScheduledCall.id == row_id)
                .values(
                    status="skipped", skip_reason=decision.reason, claimed_at=now, updated_at=now
                )
            )
        log.info(
            "call_dispatched" if isinstance(decision, Dispatch) else "schedule_row_decided",
            schedule_id=str(row_id),
            call_id=str(call_id) if call_id else None,
            decision=type(decision).__name__.lower(),
            detail=getattr(decision, "reason", None) or str(getattr(decision, "at", "")) or None,
        )
        return decision

    async def _apply(self, session: AsyncSession, row: ScheduledCall, now: datetime) -> Decision:
        debtor = await session.get(Debtor, row.debtor_id)
        call = None
        if row.call_id is not None:
            call = await session.scalar(
                select(Call).where(Call.id == row.call_id).with_for_update()
            )
        holds = tuple(h.kind for h in await active_holds(session, row.debtor_id))
        other_live = await live_call_id(session, row.debtor_id, other_than=row.call_id)
        verdict = None
        if debtor is not None:
            history = await load_history(session, debtor.id, now, self.cfg)
            wish = intent(row.reason, row.debtor_requested)
            verdict = earliest_allowed(now, contact_of(debtor), history, wish, self.cfg)
        decision = decide_claim(
            ClaimView(
                reason=row.reason,
                call_status=call.status if call is not None else None,
                has_call=row.call_id is not None,
                debtor_exists=debtor is not None,
                holds=holds,
                other_live_call=other_live is not None,
                verdict=verdict,
                now=now,
                override=row.override_reason is not None,
            )
        )
        row.updated_at = now
        if isinstance(decision, Reschedule):
            row.not_before = decision.at
            if row.call_id is not None:
                await record_step(
                    session,
                    row.call_id,
                    CallStep.RESCHEDULED,
                    at=now,
                    detail={"not_before": decision.at},
                )
            return decision
        row.claimed_at = now
        if isinstance(decision, Skip):
            row.status = "skipped"
            row.skip_reason = decision.reason[:1000]
            if decision.end_call and call is not None and call.status == "queued":
                reason = CallStepReason(decision.code) if decision.code else None
                await record_step(
                    session,
                    call.id,
                    CallStep.SKIPPED,
                    at=now,
                    detail={"message": decision.reason},
                    reason=reason,
                )
                await end_unplaced(
                    session,
                    self.settings,
                    call,
                    status="canceled",
                    outcome=None,
                    reason=decision.reason,
                    now=now,
                    step_reason=reason,
                )
            return decision
        assert debtor is not None
        if call is None:
            call = await self._new_call(session, row, debtor)
            # A retry's, callback's or campaign item's call exists from now: its schedule entry
            # is its first step.
            await record_step(
                session,
                call.id,
                CallStep.SCHEDULED,
                at=row.created_at,
                detail={
                    "schedule_reason": row.reason,
                    "not_before": row.not_before,
                    "attempt": row.attempt,
                    **({"source_call_id": row.source_call_id} if row.source_call_id else {}),
                },
            )
        variant = await variant_for_dispatch(session, call, row)
        terms = await terms_for_dispatch(session, self.settings, call, row)
        version = prompt_version(call.stage, variant)
        call.status = "dispatched"
        call.dispatched_at = now
        call.updated_at = now
        call.prompt_version = version
        call.prompt_variant = variant
        row.status = "dispatched"
        await record_step(
            session, call.id, CallStep.DISPATCHED, at=now, detail={"attempt": call.attempt}
        )
        add_event(
            session,
            self.settings.pubsub_topic_call_dispatch,
            CE_TYPE_DISPATCH,
            SOURCE,
            CallDispatch(
                call_id=call.id,
                debtor=debtor_snapshot(debtor),
                stage=call.stage,
                prompt_version=version,
                prompt_variant=variant,
                dispatched_at=now,
                negotiation_rules=terms,
            ),
            ce_id=dispatch_event_id(call.id),
        )
        await session.flush()
        return decision

    async def _new_call(self, session: AsyncSession, row: ScheduledCall, debtor: Debtor) -> Call:
        """The call of a retry or callback, created when it is placed (so it never blocks the
        debtor while it waits). It keeps the client's metadata of the call it follows up."""
        source = await session.get(Call, row.source_call_id) if row.source_call_id else None
        call = Call(
            id=uuid.uuid4(),
            debtor_id=debtor.id,
            status="queued",
            stage=debtor.stage,
            attempt=row.attempt,
            metadata_=dict(source.metadata_) if source is not None else {},
        )
        session.add(call)
        await session.flush()  # the one-live-call index decides here
        row.call_id = call.id
        return call
