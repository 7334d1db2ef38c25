"""The scheduler shell: load what the rules need, apply the decision, publish via the outbox."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from generated.call_dispatch import CallDispatch
from generated.call_requested import CallRequested
from generated.debtor_snapshot import DebtorSnapshot
from services.call_scheduler.policy import CallRequestView, Skip, decide
from services.common.bus import CloudEvent
from services.common.logging import bind_call_id, get_logger
from services.common.models import Call, Debtor
from services.common.outbox import add_event
from services.common.prompt_versions import prompt_version
from services.common.settings import Settings
from services.common.zones import conversation_zone

log = get_logger(__name__)

SOURCE = "/call-scheduler"
CE_TYPE_DISPATCH = "call.dispatch"


def snapshot(debtor: Debtor) -> DebtorSnapshot:
    return DebtorSnapshot.model_validate(
        {
            "debtor_id": debtor.id,
            "external_id": debtor.external_id,
            "name": debtor.name,
            "phone": debtor.phone,
            # The conversation needs one zone; the window was checked in every possible one.
            "timezone": conversation_zone(debtor.timezone, debtor.phone),
            "stage": debtor.stage,
            "amount_owed": {"amount_minor": debtor.amount_owed_minor, "currency": debtor.currency},
            "due_date": debtor.due_date,
            "account_reference": debtor.account_reference,
            # Verification facts: compared by the orchestrator's core, never given to the model.
            "date_of_birth": debtor.date_of_birth,
            "postal_code": debtor.postal_code,
        }
    )


class CallRequestHandler:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def __call__(self, session: AsyncSession, event: CloudEvent) -> None:
        request = CallRequested.model_validate(event.data)
        call_id = str(request.call_id)
        bind_call_id(call_id)
        # Row lock: two deliveries racing on different ce-ids still dispatch once.
        call = await session.scalar(
            select(Call).where(Call.id == request.call_id).with_for_update()
        )
        debtor = await session.get(Debtor, request.debtor_id)
        now = datetime.now(UTC)
        decision = decide(
            CallRequestView(
                call_status=call.status if call else None,
                debtor_exists=debtor is not None,
                now=now,
            )
        )
        if isinstance(decision, Skip):
            log.info("call_request_skipped", reason=decision.reason, ce_id=event.id)
            return
        assert call is not None and debtor is not None
        version = prompt_version(call.stage)
        dispatch = CallDispatch(
            call_id=call.id,
            debtor=snapshot(debtor),
            stage=call.stage,
            prompt_version=version,
            dispatched_at=now,
        )
        call.status = "dispatched"
        call.dispatched_at = now
        call.updated_at = now
        call.prompt_version = version
        add_event(
            session, self.settings.pubsub_topic_call_dispatch, CE_TYPE_DISPATCH, SOURCE, dispatch
        )
        log.info("call_dispatched", ce_id=event.id)
