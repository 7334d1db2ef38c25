"""The generated Pydantic models parse and re-emit real payloads faithfully."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

import pytest
from contract_support import SCHEMAS_DIR, documented_enumerations, schema_registry
from jsonschema import Draft202012Validator, FormatChecker
from pydantic import ValidationError

from generated.answered_by import AnsweredBy
from generated.call import Call
from generated.call_completed_data import CallCompletedData
from generated.call_completed_event import CallCompletedEvent
from generated.call_dispatch import CallDispatch
from generated.call_outcome import CallOutcome
from generated.call_requested import CallRequested
from generated.call_status import CallStatus
from generated.client_api import (
    CallTriggerRequest,
    DebtorCreate,
    Problem,
    WebhookEndpointCreate,
    WebhookEventType,
)
from generated.conversation_state import ConversationState
from generated.delinquency_stage import DelinquencyStage
from generated.money import Money
from generated.speaker import Speaker
from generated.verification_level import VerificationLevel
from generated.webhook_delivery_requested import WebhookDeliveryRequested

ENUMS = {
    "DelinquencyStage": DelinquencyStage,
    "CallStatus": CallStatus,
    "CallOutcome": CallOutcome,
    "ConversationState": ConversationState,
    "Speaker": Speaker,
}


def schema_validator(file_name: str) -> Draft202012Validator:
    uri = (SCHEMAS_DIR / file_name).as_uri()
    return Draft202012Validator(
        {"$ref": uri}, registry=schema_registry(), format_checker=FormatChecker()
    )


def normalized(value: Any) -> Any:
    """Equal JSON documents up to the spelling of timestamps (Z vs +00:00, .5 vs .500000)."""
    if isinstance(value, dict):
        return {key: normalized(item) for key, item in value.items()}
    if isinstance(value, list):
        return [normalized(item) for item in value]
    if isinstance(value, str) and len(value) >= 20 and value[10:11] == "T":
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return value
    return value


def round_trip_json(model: Any) -> dict[str, Any]:
    dumped = json.loads(model.model_dump_json())
    assert type(model).model_validate(dumped) == model
    assert type(model).model_validate_json(model.model_dump_json()) == model
    return dumped


def test_call_completed_event_round_trip(sample_event: dict[str, Any]) -> None:
    event = CallCompletedEvent.model_validate(sample_event)
    call = event.data.call
    assert event.type == "call.completed"
    assert isinstance(event.id, UUID)
    assert call.status is CallStatus.COMPLETED
    assert call.outcome is CallOutcome.PROMISE_TO_PAY
    assert call.stage is DelinquencyStage.EARLY
    assert call.answered_at == datetime(2026, 11, 27, 15, 4, 9, 800000, tzinfo=UTC)
    assert call.answered_by is AnsweredBy.HUMAN
    assert call.transcript[2].interrupted is True
    assert call.transcript[0].speaker is Speaker.AGENT
    assert call.transcript[3].state is ConversationState.NEGOTIATION
    assert call.payment_promise is not None
    assert call.payment_promise.due_date == date(2026, 12, 10)
    assert call.payment_promise.amount == Money(amount_minor=45000, currency="USD")
    assert call.latency[0].voice_to_voice_ms is None
    assert call.latency[1].barge_in_to_clear_ms == 64
    assert call.cost is not None and call.cost.total_micro_usd == 76700

    dumped = round_trip_json(event)
    assert normalized(dumped) == normalized(sample_event)
    schema_validator("call_completed_event.json").validate(dumped)


def test_call_round_trip_and_optional_usage(sample_event: dict[str, Any]) -> None:
    payload = sample_event["data"]["call"]
    call = Call.model_validate(payload)
    assert normalized(round_trip_json(call)) == normalized(payload)

    without = {k: v for k, v in payload.items() if k not in ("usage", "cost")}
    bare = Call.model_validate(without)
    assert bare.usage is None and bare.cost is None
    schema_validator("call.json").validate(json.loads(bare.model_dump_json()))
    assert CallCompletedData(call=bare).call == bare


def test_queued_call_as_the_api_returns_it() -> None:
    call = Call(
        id=UUID("7d1f5f3a-2c1e-4b8f-9a3b-5b0c8f6e2a10"),
        debtor_id=UUID("3b2e8a4c-9d5f-4e1a-8b7c-6d5e4f3a2b1c"),
        status=CallStatus.QUEUED,
        outcome=None,
        verification=VerificationLevel.NONE,
        verification_fact=None,
        stage=DelinquencyStage.LATE,
        prompt_version=None,
        prompt_variant=None,
        twilio_call_sid=None,
        metadata={},
        created_at=datetime(2026, 11, 27, 15, 4, tzinfo=UTC),
        dispatched_at=None,
        started_at=None,
        answered_by=None,
        answered_at=None,
        ended_at=None,
        duration_seconds=None,
        failure_reason=None,
        attempt=1,
        scheduled_for=datetime(2026, 11, 27, 15, 4, tzinfo=UTC),
        transcript=[],
        payment_promise=None,
        payment_plan=None,
        dispute_reason=None,
        hardship_note=None,
        callback=None,
        recording_url=None,
        transcript_url=None,
        latency=[],
    )
    dumped = round_trip_json(call)
    assert dumped["status"] == "queued"
    assert dumped["created_at"] == "2026-11-27T15:04:00Z"
    schema_validator("call.json").validate(dumped)


@pytest.mark.parametrize(
    "bad",
    [
        {"created_at": "2026-11-27T15:04:00"},  # no offset
        {"status": "done"},
        {"outcome": "paid"},
        {"twilio_call_sid": "CA123"},
        {"duration_seconds": -1},
        {"metadata": {"k": "v" * 501}},
        {"prompt_variant": "Plan First"},
    ],
    ids=lambda d: next(iter(d)),
)
def test_call_rejects_invalid_values(sample_event: dict[str, Any], bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Call.model_validate(sample_event["data"]["call"] | bad)


def test_pubsub_bodies_round_trip(sample_event: dict[str, Any]) -> None:
    requested = CallRequested.model_validate(
        {
            "call_id": "7d1f5f3a-2c1e-4b8f-9a3b-5b0c8f6e2a10",
            "debtor_id": "3b2e8a4c-9d5f-4e1a-8b7c-6d5e4f3a2b1c",
            "requested_at": "2026-11-27T15:04:00.100Z",
            "idempotency_key": None,
        }
    )
    dispatch = CallDispatch.model_validate(
        {
            "call_id": "7d1f5f3a-2c1e-4b8f-9a3b-5b0c8f6e2a10",
            "debtor": {
                "debtor_id": "3b2e8a4c-9d5f-4e1a-8b7c-6d5e4f3a2b1c",
                "external_id": "crm-10293",
                "name": "Jane Doe",
                "phone": "+14155550123",
                "timezone": "America/Los_Angeles",
                "stage": "early",
                "amount_owed": {"amount_minor": 45000, "currency": "USD"},
                "due_date": "2026-11-01",
                "account_reference": None,
            },
            "stage": "early",
            "prompt_version": None,
            "dispatched_at": "2026-11-27T15:04:00.350+00:00",
        }
    )
    delivery = WebhookDeliveryRequested.model_validate(
        {
            "delivery_id": "9a0c6f3e-1b2d-4c5e-8f7a-0b1c2d3e4f5a",
            "endpoint_id": "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
            "event_id": sample_event["id"],
            "attempt": 1,
        }
    )
    data = CallCompletedData.model_validate(sample_event["data"])
    for model, schema_file in (
        (requested, "call_requested.json"),
        (dispatch, "call_dispatch.json"),
        (delivery, "webhook_delivery_requested.json"),
        (data, "call_completed_data.json"),
    ):
        schema_validator(schema_file).validate(round_trip_json(model))
    assert dispatch.debtor.due_date == date(2026, 11, 1)
    with pytest.raises(ValidationError):
        WebhookDeliveryRequested.model_validate(delivery.model_dump() | {"attempt": 0})


def test_rest_request_models() -> None:
    debtor = DebtorCreate.model_validate(
        {
            "name": "Jane Doe",
            "phone": "+14155550123",
            "timezone": "America/Los_Angeles",
            "stage": "pre_delinquency",
            "amount_owed": {"amount_minor": 45000, "currency": "USD"},
            "due_date": "2026-12-01",
        }
    )
    assert debtor.metadata == {}
    assert debtor.external_id is None
    for bad in (
        {"phone": "4155550123"},
        {"name": "   "},
        {"amount_owed": {"amount_minor": 1.5, "currency": "USD"}},
        {"amount_owed": {"amount_minor": 1, "currency": "USD", "x": 1}},
        {"unknown": 1},
        {"metadata": {str(i): "v" for i in range(51)}},
    ):
        with pytest.raises(ValidationError):
            DebtorCreate.model_validate(debtor.model_dump() | bad)

    endpoint = WebhookEndpointCreate.model_validate({"url": "https://example.com/hooks"})
    assert endpoint.events == [WebhookEventType.CALL_COMPLETED]
    with pytest.raises(ValidationError):
        WebhookEndpointCreate.model_validate({"url": "ftp://example.com"})
    assert CallTriggerRequest.model_validate({}).metadata == {}
    with pytest.raises(ValidationError):
        CallTriggerRequest.model_validate({"metadata": {}, "priority": 1})


def test_problem_keeps_extension_members() -> None:
    problem = Problem.model_validate(
        {
            "type": "urn:problem:validation-error",
            "title": "Validation failed",
            "status": 422,
            "errors": [{"field": "body.phone", "message": "must be E.164"}],
        }
    )
    assert problem.errors is not None and problem.errors[0].field == "body.phone"
    assert json.loads(problem.model_dump_json(exclude_none=True))["status"] == 422


@pytest.mark.parametrize("name", sorted(ENUMS))
def test_generated_enums_match_internal_contracts(name: str) -> None:
    enum = ENUMS[name]
    assert [member.value for member in enum] == documented_enumerations()[name]
    first = documented_enumerations()[name][0]
    assert enum(first) == first and str(enum(first)) == first  # StrEnum: usable as plain text
