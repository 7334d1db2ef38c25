"""Nothing stuck, nothing twice: dials whose outcome is unknown, and dispatches that never came.

Two kinds of call are reconciled, at startup and then every `dial_reconcile_interval_seconds`:

- **A dial intent with no CallSid** (`dial_started_at` set, `twilio_call_sid` NULL): the process
  that sent create-call died (or lost the answer) before storing the CallSid. Twilio's Call
  resource carries nothing we set, so the call is found in Twilio's call list by what we do
  know: sent to the debtor's number, created since the intent, and not already another call
  row's CallSid. One such call: its CallSid is adopted and its status applied (the status
  callbacks then flow normally). None, once the intent is older than any create-call could
  still be in flight: it was never placed, so it is dialed again, up to `dial_max_attempts`
  intents, then failed. More than one: we cannot tell which is ours, so it is failed, never
  dialed again.
- **A `dispatched` call nobody claimed** within `call_dispatch_deadline_seconds` (its
  `call.dispatch` message lost or dead-lettered, or the consumer down): it has no intent, so
  it was never dialed, and the orchestrator dials it itself (the dispatcher's claim still makes
  it once). Past `call_dispatch_max_age_seconds` it is failed instead: the scheduling rules
  were checked at dispatch time and may no longer hold.

The decisions are plain functions (`decide_intent`, `decide_dispatched`); the shell around them
reads rows, asks Twilio and applies them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, cast

from sqlalchemy import Table, bindparam, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from generated.call_dispatch import CallDispatch
from generated.call_step_reason import CallStepReason
from services.common.logging import bind_call_id, get_logger
from services.common.models import Call, Debtor
from services.common.settings import Settings
from services.common.snapshots import debtor_snapshot
from services.voice_orchestrator.dispatch import Dispatcher, store_call_sid
from services.voice_orchestrator.finalize import end_without_session

if TYPE_CHECKING:
    from services.voice_orchestrator.orchestrator import Orchestrator

log = get_logger(__name__)

# Twilio's clock and ours may differ; a call created this long before our intent still counts.
CLOCK_SKEW = timedelta(seconds=60)
# An intent younger than this is most likely being dialed right now: not even looked up.
LOOKUP_AFTER = timedelta(seconds=2)
# Most recent calls to the number asked of Twilio (newest first); ours is among the latest.
LOOKUP_LIMIT = 20
BATCH = 100
INTENT_STATUSES = ("dialing", "ringing", "in_progress")


# ---- pure core ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TwilioCall:
    """A call as Twilio's list shows it."""

    sid: str
    status: str
    created: datetime | None


@dataclass(frozen=True)
class Adopt:
    call: TwilioCall


@dataclass(frozen=True)
class Redial:
    pass


@dataclass(frozen=True)
class Fail:
    reason: str


@dataclass(frozen=True)
class Wait:
    pass


IntentDecision = Adopt | Redial | Fail | Wait
DispatchedDecision = Redial | Fail | Wait


def candidates(
    calls: Sequence[TwilioCall], dial_started_at: datetime, owned: set[str]
) -> list[TwilioCall]:
    """Twilio calls that may be this dial's: created since the intent, no other row's CallSid."""
    since = dial_started_at - CLOCK_SKEW
    return [c for c in calls if c.sid not in owned and (c.created is None or c.created >= since)]


def decide_intent(
    *,
    status: str,
    dial_started_at: datetime,
    dial_attempts: int,
    found: Sequence[TwilioCall],
    now: datetime,
    settle: timedelta,
    max_attempts: int,
) -> IntentDecision:
    """`found`: the `candidates` for this intent. `settle`: how long a create-call may still be
    in flight after its intent (past it, "not in Twilio's list" means "never placed")."""
    if len(found) == 1:
        return Adopt(found[0])
    if len(found) > 1:
        return Fail(
            f"the dial's outcome was lost and Twilio lists {len(found)} calls to the number since;"
            " cannot tell which was this call's, so it is not dialed again"
        )
    if now - dial_started_at < settle:
        return Wait()
    if status != "dialing":
        # Twilio reported progress (a status callback) but lists no call: do not dial blind.
        return Fail("Twilio reported the call but its call list has no call for it")
    if dial_attempts >= max_attempts:
        return Fail(
            f"the dial's outcome was lost {dial_attempts} times (Twilio lists no call for it);"
            " not dialed again"
        )
    return Redial()


def decide_dispatched(
    *, dispatched_at: datetime, now: datetime, deadline: timedelta, max_age: timedelta
) -> DispatchedDecision:
    age = now - dispatched_at
    if age < deadline:
        return Wait()
    if age >= max_age:
        return Fail(
            f"dispatched {int(age.total_seconds())} s ago and never dialed (its call.dispatch"
            " message was lost); too late to place it under the rules checked at dispatch"
        )
    return Redial()


# ---- shell ----------------------------------------------------------------------------------


class CallLookup(Protocol):
    async def calls_to(self, to: str) -> list[TwilioCall]: ...


class TwilioCallList:
    """Twilio's call list (GET /2010-04-01/Accounts/{Sid}/Calls.json?To=...) on the official SDK."""

    def __init__(self, client: Any) -> None:
        self.client = client  # twilio.rest.Client

    async def calls_to(self, to: str) -> list[TwilioCall]:
        calls = await self.client.calls.list_async(
            to=to, limit=LOOKUP_LIMIT, page_size=LOOKUP_LIMIT
        )
        return [TwilioCall(str(c.sid), str(c.status), c.date_created) for c in calls]


def twilio_lookup(telephony: Any) -> CallLookup | None:
    """The lookup for a Twilio telephony client; None for a test double without one."""
    client = getattr(telephony, "client", None)
    return None if client is None else TwilioCallList(client)


# Built once: constructing the alias and the statement per callback cost ~6 ms of event-loop
# time each (py-spy at 100 calls: a quarter of all status-callback CPU). A Core UPDATE on the
# table also skips the ORM's in-session synchronisation, which nothing here needs.
_calls = cast(Table, Call.__table__)
_other = _calls.alias("other_call")
_ADOPT_CALL_SID = (
    update(_calls)
    .where(
        _calls.c.id == bindparam("call_id"),
        _calls.c.twilio_call_sid.is_(None),
        _calls.c.dial_started_at.is_not(None),
        _calls.c.status.in_(INTENT_STATUSES),
        ~exists().where(_other.c.twilio_call_sid == bindparam("sid")),
    )
    .values(twilio_call_sid=bindparam("sid"), updated_at=func.now())
    .returning(_calls.c.id)
)


async def adopt_call_sid(session: AsyncSession, call_id: uuid.UUID, sid: str) -> bool:
    """A signed status callback names the CallSid of a dial whose answer we lost: record it.

    Twilio signs the callback over our URL (which carries the call id) and its parameters, so
    the pair is Twilio's word; a CallSid another row owns is never taken."""
    if not sid:
        return False
    row = (await session.execute(_ADOPT_CALL_SID, {"call_id": call_id, "sid": sid})).first()
    if row is not None:
        log.info("dial_reconciled_from_callback", call_sid=sid)
    return row is not None


def dispatch_from_rows(call: Call, debtor: Debtor) -> CallDispatch:
    """The dispatch the scheduler sent (or would have), rebuilt from the rows."""
    return CallDispatch.model_validate(
        {
            "call_id": call.id,
            # A redial verifies as the first dial would have (never by name alone).
            "debtor": debtor_snapshot(debtor).model_dump(),
            "stage": call.stage,
            "prompt_version": call.prompt_version,
            "prompt_variant": call.prompt_variant,
            "dispatched_at": call.dispatched_at or call.updated_at,
        }
    )


@dataclass
class SweepReport:
    adopted: int = 0
    redialed: int = 0
    failed: int = 0


StatusFn = Callable[[uuid.UUID, dict[str, str]], Awaitable[None]]


class Reconciler:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        dispatcher: Dispatcher,
        lookup: CallLookup | None,
        *,
        apply_status: StatusFn | None = None,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.dispatcher = dispatcher
        self.lookup = lookup
        # The status-callback handler: an adopted call's Twilio status is applied as if Twilio
        # had just posted it (its callbacks may have gone to the dead process).
        self.apply_status = apply_status
        self.wake = wake  # the outbox relay, for the `call.completed` of a failed call

    async def run(self) -> None:
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("reconcile_error", error=repr(exc))
            await asyncio.sleep(self.settings.dial_reconcile_interval_seconds)

    async def sweep(self, now: datetime | None = None) -> SweepReport:
        report = SweepReport()
        now = now or datetime.now(UTC)
        await self._intents(now, report)
        await self._dispatched(now, report)
        if report.failed and self.wake is not None:
            self.wake()
        return report

    # -- dial intents with no CallSid --------------------------------------------------------
    async def _intents(self, now: datetime, report: SweepReport) -> None:
        if self.lookup is None:
            return
        async with self.sessions() as db:
            rows = (
                await db.execute(
                    select(Call, Debtor.phone)
                    .join(Debtor, Debtor.id == Call.debtor_id)
                    .where(
                        Call.status.in_(INTENT_STATUSES),
                        Call.twilio_call_sid.is_(None),
                        Call.dial_started_at < now - LOOKUP_AFTER,
                    )
                    .order_by(Call.dial_started_at)
                    .limit(BATCH)
                )
            ).all()
        for call, phone in rows:
            bind_call_id(str(call.id))
            try:
                await self._intent(call, phone, now, report)
            except Exception as exc:  # Twilio's list unreachable: try again next sweep
                log.warning("dial_reconcile_failed", error=repr(exc))

    async def _intent(self, call: Call, phone: str, now: datetime, report: SweepReport) -> None:
        assert self.lookup is not None and call.dial_started_at is not None
        listed = await self.lookup.calls_to(phone)
        sids = [c.sid for c in listed]
        async with self.sessions() as db:
            owned = set(
                (
                    await db.scalars(
                        select(Call.twilio_call_sid).where(Call.twilio_call_sid.in_(sids))
                    )
                ).all()
            )
        decision = decide_intent(
            status=call.status,
            dial_started_at=call.dial_started_at,
            dial_attempts=call.dial_attempts,
            found=candidates(listed, call.dial_started_at, {s for s in owned if s}),
            now=now,
            settle=timedelta(seconds=self.settings.dial_reconcile_after_seconds),
            max_attempts=self.settings.dial_max_attempts,
        )
        if isinstance(decision, Wait):
            return
        if isinstance(decision, Adopt):
            if await store_call_sid(self.sessions, call.id, decision.call.sid):
                report.adopted += 1
                log.info(
                    "dial_reconciled_adopted",
                    call_sid=decision.call.sid,
                    twilio_status=decision.call.status,
                )
                if self.apply_status is not None:
                    await self.apply_status(
                        call.id, {"CallSid": decision.call.sid, "CallStatus": decision.call.status}
                    )
            return
        if isinstance(decision, Redial):
            # Twilio has no call for it: back to `dispatched` (still no CallSid, same intent we
            # looked at), then the dispatcher's own claim places it once.
            async with self.sessions() as db, db.begin():
                reset = (
                    await db.execute(
                        update(Call)
                        .where(
                            Call.id == call.id,
                            Call.status == "dialing",
                            Call.twilio_call_sid.is_(None),
                            Call.dial_started_at == call.dial_started_at,
                        )
                        .values(status="dispatched", updated_at=func.now())
                        .returning(Call.id)
                    )
                ).first()
            if reset is not None:
                log.warning("dial_reconciled_redial", attempts=call.dial_attempts)
                if await self._dial(call.id):
                    report.redialed += 1
            return
        await self._fail(call.id, decision.reason, INTENT_STATUSES, report)

    # -- dispatched, never claimed -----------------------------------------------------------
    async def _dispatched(self, now: datetime, report: SweepReport) -> None:
        deadline = timedelta(seconds=self.settings.call_dispatch_deadline_seconds)
        since = func.coalesce(Call.dispatched_at, Call.updated_at)
        async with self.sessions() as db:
            rows = (
                await db.execute(
                    select(Call.id, since)
                    .where(Call.status == "dispatched", since < now - deadline)
                    .order_by(since)
                    .limit(BATCH)
                )
            ).all()
        for call_id, dispatched_at in rows:
            bind_call_id(str(call_id))
            decision = decide_dispatched(
                dispatched_at=dispatched_at,
                now=now,
                deadline=deadline,
                max_age=timedelta(seconds=self.settings.call_dispatch_max_age_seconds),
            )
            if isinstance(decision, Redial):
                log.warning("dispatch_reconciled_dial")
                try:
                    if await self._dial(call_id):
                        report.redialed += 1
                except Exception as exc:  # Twilio refused for now: the next sweep tries again
                    log.warning("dispatch_reconcile_dial_failed", error=repr(exc))
            elif isinstance(decision, Fail):
                await self._fail(call_id, decision.reason, ("dispatched",), report)

    # -- effects ------------------------------------------------------------------------------
    async def _dial(self, call_id: uuid.UUID) -> bool:
        async with self.sessions() as db:
            row = (
                await db.execute(
                    select(Call, Debtor)
                    .join(Debtor, Debtor.id == Call.debtor_id)
                    .where(Call.id == call_id)
                )
            ).first()
        if row is None:
            return False
        return await self.dispatcher.dial(dispatch_from_rows(row[0], row[1]))

    async def _fail(
        self, call_id: uuid.UUID, reason: str, statuses: tuple[str, ...], report: SweepReport
    ) -> None:
        async with self.sessions() as db, db.begin():
            # Re-read under the row lock: it may have moved on (claimed, answered) since.
            still = await db.scalar(
                select(Call.id)
                .where(
                    Call.id == call_id,
                    Call.status.in_(statuses),
                    Call.twilio_call_sid.is_(None),
                )
                .with_for_update()
            )
            if still is None:
                return
            ended = await end_without_session(
                db,
                self.settings,
                call_id,
                status="failed",
                outcome="failed",
                failure_reason=reason,
                reason=CallStepReason.DIAL_LOST,
            )
        if ended:
            report.failed += 1
            log.warning("call_reconciled_failed", reason=reason)


def for_orchestrator(
    orch: Orchestrator, dispatcher: Dispatcher, apply_status: StatusFn
) -> Reconciler:
    return Reconciler(
        orch.settings,
        orch.sessions,
        dispatcher,
        twilio_lookup(orch.telephony),
        apply_status=apply_status,
        wake=orch.relay.wake if orch.relay is not None else None,
    )
