"""The verification facts on file reach the conversation: every producer of a dispatch snapshot
(the scheduler's first dispatch, the orchestrator's redial after reconciliation) carries them,
and the orchestrator turns them into the core's facts (last 4 digits of the account reference)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from generated.call_dispatch import CallDispatch
from services.common.models import Call, Debtor
from services.common.settings import Settings
from services.common.snapshots import debtor_snapshot as snapshot
from services.common.verification_facts import account_last4
from services.voice_orchestrator.calls import facts_from_dispatch
from services.voice_orchestrator.reconcile import dispatch_from_rows


def _debtor(**overrides: object) -> Debtor:
    values: dict[str, object] = {
        "id": uuid.uuid4(),
        "external_id": None,
        "name": "Jane Doe",
        "phone": "+14155550123",
        "timezone": "America/Los_Angeles",
        "stage": "early",
        "amount_owed_minor": 45000,
        "currency": "USD",
        "due_date": date(2026, 11, 1),
        "account_reference": "ACME-22-91",
        "date_of_birth": date(1985, 3, 4),
        "postal_code": "62704",
    }
    values.update(overrides)
    return Debtor(**values)


def test_snapshots_carry_the_facts_and_the_core_gets_them() -> None:
    debtor = _debtor()
    call = Call(id=uuid.uuid4(), stage="early", dispatched_at=datetime.now(UTC))
    first = CallDispatch(
        call_id=call.id,
        debtor=snapshot(debtor),
        stage="early",
        prompt_version=None,
        dispatched_at=datetime.now(UTC),
    )
    for msg in (first, dispatch_from_rows(call, debtor)):
        assert (msg.debtor.date_of_birth, msg.debtor.postal_code) == (date(1985, 3, 4), "62704")
        facts = facts_from_dispatch(msg, Settings())
        assert facts.date_of_birth == date(1985, 3, 4)
        assert (facts.postal_code, facts.account_last4) == ("62704", "2291")


def test_without_facts_nothing_is_on_file() -> None:
    msg = dispatch_from_rows(
        Call(id=uuid.uuid4(), stage="early", dispatched_at=datetime.now(UTC)),
        _debtor(date_of_birth=None, postal_code=None, account_reference="ACC-1"),
    )
    facts = facts_from_dispatch(msg, Settings())
    assert (facts.date_of_birth, facts.postal_code, facts.account_last4) == (None, None, None)


def test_account_last4() -> None:
    assert account_last4("ACME-2291") == "2291"
    assert account_last4("12-34-5678") == "5678"
    assert account_last4("ACC-123") is None
    assert account_last4(None) is None


def test_a_redial_of_a_debtor_without_a_zone_speaks_in_the_numbers_zone() -> None:
    # The record has no zone: the reconciler's redial gives the conversation the same zone as
    # the scheduler's first dispatch (the number's), never none.
    debtor = _debtor(timezone=None, phone="+13125550123")  # Chicago
    call = Call(id=uuid.uuid4(), stage="early", dispatched_at=datetime.now(UTC))
    redial = dispatch_from_rows(call, debtor)
    assert redial.debtor.timezone == snapshot(debtor).timezone == "America/Chicago"
