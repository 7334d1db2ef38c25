"""specs/schemas: valid JSON Schema 2020-12, resolvable refs, binding enumerations."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from contract_support import (
    SCHEMA_FILES,
    SCHEMAS_DIR,
    documented_enumerations,
    iter_refs,
    load_json,
    resolve_ref,
    schema_registry,
)
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"

# The payloads the architecture names; each must stay a file of its own.
REQUIRED_FILES = {
    "money.json": "Money",
    "delinquency_stage.json": "DelinquencyStage",
    "call_status.json": "CallStatus",
    "call_outcome.json": "CallOutcome",
    "conversation_state.json": "ConversationState",
    "speaker.json": "Speaker",
    "debtor_snapshot.json": "DebtorSnapshot",
    "transcript_turn.json": "TranscriptTurn",
    "turn_latency.json": "TurnLatency",
    "payment_promise.json": "PaymentPromise",
    "callback.json": "Callback",
    "call_usage.json": "CallUsage",
    "call_cost.json": "CallCost",
    "call.json": "Call",
    "call_completed_data.json": "CallCompletedData",
    "call_completed_event.json": "CallCompletedEvent",
    "call_requested.json": "CallRequested",
    "call_dispatch.json": "CallDispatch",
    "webhook_delivery_requested.json": "WebhookDeliveryRequested",
    "client_api.json": "ClientApiModels",
}


def validator_for(file_name: str, fragment: str = "") -> Draft202012Validator:
    """A format-checking validator for a schema file (or a `$defs` entry of it)."""
    uri = (SCHEMAS_DIR / file_name).as_uri()
    return Draft202012Validator(
        {"$ref": f"{uri}#{fragment}"}, registry=schema_registry(), format_checker=FormatChecker()
    )


def test_expected_schema_files_exist() -> None:
    present = {path.name for path in SCHEMA_FILES}
    assert set(REQUIRED_FILES) <= present, f"missing: {sorted(set(REQUIRED_FILES) - present)}"


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_schema_is_valid_2020_12(path: Path) -> None:
    schema = load_json(path)
    assert schema.get("$schema") == DRAFT_2020_12, f"{path.name}: $schema must be {DRAFT_2020_12}"
    assert schema.get("$id") == path.name, f"{path.name}: $id must be the file name"
    assert schema.get("title"), f"{path.name}: a title names the generated class"
    assert path.stem.isidentifier(), f"{path.name}: the file name becomes a Python module name"
    if path.name in REQUIRED_FILES:
        assert schema["title"] == REQUIRED_FILES[path.name]
    Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_every_ref_resolves(path: Path) -> None:
    document = load_json(path)
    for pointer, ref in iter_refs(document):
        file_part = ref.partition("#")[0]
        assert "/" not in file_part, f"{path.name}{pointer}: refer to sibling files by file name"
        target_file, target = resolve_ref(ref, path, document)
        assert isinstance(target, dict), f"{path.name}{pointer}: {ref} resolves to {target!r}"
        assert target_file.parent == SCHEMAS_DIR
        # the referencing library (used by jsonschema and the spec validators) agrees
        schema_registry().resolver(base_uri=path.as_uri()).lookup(ref)


@pytest.mark.parametrize("title", sorted(documented_enumerations()))
def test_enumerations_match_internal_contracts(title: str) -> None:
    by_title = {load_json(p)["title"]: load_json(p) for p in SCHEMA_FILES}
    assert by_title[title]["enum"] == documented_enumerations()[title], (
        f"{title} must list exactly the values of docs/internal-contracts.md, in that order"
    )


def test_money_rejects_floats_negatives_and_bad_currency() -> None:
    money = validator_for("money.json")
    assert money.is_valid({"amount_minor": 45000, "currency": "USD"})
    for bad in (
        {"amount_minor": 450.5, "currency": "USD"},
        {"amount_minor": -1, "currency": "USD"},
        {"amount_minor": 1, "currency": "usd"},
        {"amount_minor": 1, "currency": "USD", "extra": 1},
        {"amount_minor": 1},
    ):
        assert not money.is_valid(bad), bad


def test_phone_and_timezone_patterns() -> None:
    phone = validator_for("phone_number.json")
    assert phone.is_valid("+14155550123")
    for bad in ("14155550123", "+04155550123", "+1 415 555 0123", "+123"):
        assert not phone.is_valid(bad), bad
    timezone = validator_for("timezone.json")
    for good in ("UTC", "America/New_York", "America/Argentina/Buenos_Aires", "Etc/GMT+5"):
        assert timezone.is_valid(good), good
    for bad in ("", "America/", "/UTC", "America New_York", "x" * 65):
        assert not timezone.is_valid(bad), bad


def test_sample_event_validates(sample_event: dict) -> None:
    validator_for("call_completed_event.json").validate(sample_event)
    validator_for("call.json").validate(sample_event["data"]["call"])


def _call(event: dict) -> dict:
    return event["data"]["call"]


VIOLATIONS = {
    "unknown event type": lambda e: e.update(type="call.failed"),
    "unknown status": lambda e: _call(e).update(status="done"),
    "unknown outcome": lambda e: _call(e).update(outcome="paid"),
    "unknown speaker": lambda e: _call(e)["transcript"][0].update(speaker="bot"),
    "time without offset": lambda e: _call(e).update(created_at="2026-11-27T15:04:00"),
    "missing latency": lambda e: _call(e).pop("latency"),
    "fractional ms": lambda e: _call(e)["latency"][0].update(stt_final_ms=12.5),
    "bad CallSid": lambda e: _call(e).update(twilio_call_sid="not-a-sid"),
    "float money": lambda e: _call(e)["payment_promise"]["amount"].update(amount_minor=1.5),
}


@pytest.mark.parametrize("violation", sorted(VIOLATIONS))
def test_sample_event_violations_are_caught(sample_event: dict, violation: str) -> None:
    event = copy.deepcopy(sample_event)
    VIOLATIONS[violation](event)
    with pytest.raises(ValidationError):
        validator_for("call_completed_event.json").validate(event)


def test_client_api_definitions_validate_examples() -> None:
    client_api = load_json(SCHEMAS_DIR / "client_api.json")
    for name, definition in client_api["$defs"].items():
        assert definition.get("title") == name, f"client_api.json#/$defs/{name}: title != key"
        for example in definition.get("examples", []):
            validator_for("client_api.json", f"/$defs/{name}").validate(example)
