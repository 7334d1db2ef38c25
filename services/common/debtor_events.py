"""`debtor.opted_out`, `debtor.disputed` and `debtor.validation_notice_requested`: sent when an
opt-out, dispute or validation-notice hold is placed.

On the `call-events` topic through the outbox, in the transaction that placed the hold (so the
event exists exactly when the hold committed). The ce-id is derived from the hold's id: one
event per hold, however often the change is retried; a repeat of an active hold places no hold
and sends nothing. The Client API fans them out to subscribed webhook endpoints.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from generated.debtor_event_data import DebtorEventData, Kind, PlacedHold
from services.common.outbox import add_event
from services.common.settings import Settings

DebtorEventType = Literal[
    "debtor.opted_out", "debtor.disputed", "debtor.validation_notice_requested"
]
# The hold kinds that are events (a wrong-number hold is not a debtor's decision: no event).
EVENT_OF_HOLD: dict[str, DebtorEventType] = {
    "opt_out": "debtor.opted_out",
    "dispute": "debtor.disputed",
    # The debtor asked for the debt in writing: the client sends the validation notice, and
    # an operator lifts the hold once it is out (docs/negotiation.md).
    "validation_notice": "debtor.validation_notice_requested",
}
DEBTOR_EVENT_TYPES: tuple[DebtorEventType, ...] = tuple(EVENT_OF_HOLD.values())
_EVENT_NS = uuid.UUID("5d2c8e0a-7b41-4f3e-9c1d-2a6b8e4f0c37")


def event_id(ce_type: str, hold_id: uuid.UUID) -> str:
    return str(uuid.uuid5(_EVENT_NS, f"{ce_type}:{hold_id}"))


def add_hold_event(
    session: AsyncSession,
    settings: Settings,
    *,
    source: str,
    debtor_id: uuid.UUID,
    hold_id: uuid.UUID,
    kind: str,
    reason: str,
    call_id: uuid.UUID | None,
    created_at: datetime,
) -> DebtorEventType | None:
    """Add the event of a newly placed hold to the outbox; None for a kind that has none."""
    ce_type = EVENT_OF_HOLD.get(kind)
    if ce_type is None:
        return None
    data = DebtorEventData(
        debtor_id=debtor_id,
        hold=PlacedHold(
            id=hold_id, kind=Kind(kind), reason=reason, call_id=call_id, created_at=created_at
        ),
    )
    add_event(
        session,
        settings.pubsub_topic_call_events,
        ce_type,
        source,
        data,
        ce_id=event_id(ce_type, hold_id),
    )
    return ce_type
