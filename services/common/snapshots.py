"""The debtor as a call sees it: the snapshot a `call.dispatch` carries.

Built in one place: the Call Scheduler sends it, and the orchestrator's reconciler rebuilds the
same one when it redials a dial Twilio never got.
"""

from __future__ import annotations

from generated.debtor_snapshot import DebtorSnapshot
from services.common.models import Debtor
from services.common.zones import conversation_zone


def debtor_snapshot(debtor: Debtor) -> DebtorSnapshot:
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
