"""specs/asyncapi/pubsub.yaml: AsyncAPI 3 topics, CloudEvents attributes, payload schemas."""

from __future__ import annotations

from typing import Any

import pytest
from contract_support import (
    ASYNCAPI_PATH,
    FIXTURES,
    SCHEMAS_DIR,
    iter_refs,
    load_json,
    resolve_ref,
)
from jsonschema import Draft7Validator, Draft202012Validator

CE_HEADERS = {"ce-id", "ce-type", "ce-source", "ce-specversion", "ce-time"}

# channel (= Pub/Sub topic) -> (ce-type, ce-source, payload schema file)
CHANNELS = {
    "call-requests": ("call.requested", ("/client-api",), "call_requested.json"),
    "call-dispatch": ("call.dispatch", ("/call-scheduler",), "call_dispatch.json"),
    # The orchestrator ends the calls it placed, the scheduler those it never placed.
    "call-events": (
        "call.completed",
        ("/voice-orchestrator", "/call-scheduler", "/client-api"),
        "call_completed_data.json",
    ),
    "webhook-deliveries": (
        "webhook.delivery_requested",
        ("/client-api",),
        "webhook_delivery_requested.json",
    ),
    "debtor-imports": (
        "import.batch_requested",
        ("/client-api",),
        "import_batch_requested.json",
    ),
}

# Further messages on a channel: (channel, message key) -> (ce-type, ce-source, payload file)
OTHER_MESSAGES = {
    ("call-events", "ImportCompleted"): (
        "import.completed",
        ("/client-api",),
        "import_completed_data.json",
    ),
    ("call-events", "PromiseCreated"): (
        "promise.created",
        ("/voice-orchestrator", "/call-scheduler"),
        "promise_event_data.json",
    ),
    ("call-events", "PromiseKept"): (
        "promise.kept",
        ("/client-api", "/call-scheduler"),
        "promise_event_data.json",
    ),
    ("call-events", "PromiseBroken"): (
        "promise.broken",
        ("/call-scheduler",),
        "promise_event_data.json",
    ),
    ("call-events", "CampaignCompleted"): (
        "campaign.completed",
        ("/call-scheduler",),
        "campaign_completed_data.json",
    ),
    ("call-events", "DebtorOptedOut"): (
        "debtor.opted_out",
        ("/call-scheduler",),
        "debtor_event_data.json",
    ),
    ("call-events", "DebtorDisputed"): (
        "debtor.disputed",
        ("/call-scheduler",),
        "debtor_event_data.json",
    ),
    ("call-events", "DebtorValidationNoticeRequested"): (
        "debtor.validation_notice_requested",
        ("/call-scheduler",),
        "debtor_event_data.json",
    ),
}


def expected(channel_id: str, key: str) -> tuple[str, tuple[str, ...], str]:
    return OTHER_MESSAGES.get((channel_id, key), CHANNELS[channel_id])


# (service, action, channel) of every operation
OPERATIONS = {
    ("client-api", "send", "call-requests"),
    ("call-scheduler", "receive", "call-requests"),
    ("call-scheduler", "send", "call-dispatch"),
    ("voice-orchestrator", "receive", "call-dispatch"),
    ("voice-orchestrator", "send", "call-events"),
    ("call-scheduler", "send", "call-events"),
    ("client-api", "receive", "call-events"),
    ("call-scheduler", "receive", "call-events"),
    ("client-api", "send", "webhook-deliveries"),
    ("client-api", "receive", "webhook-deliveries"),
    ("client-api", "send", "debtor-imports"),
    ("client-api", "receive", "debtor-imports"),
    ("client-api", "send", "call-events"),
}


def deref(doc: dict[str, Any], node: Any) -> Any:
    """Follow local `$ref`s inside the AsyncAPI document."""
    while isinstance(node, dict) and "$ref" in node and node["$ref"].startswith("#/"):
        _, node = resolve_ref(node["$ref"], ASYNCAPI_PATH, doc)
    return node


def channel_messages(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(channel id, message key, resolved message) for every message of every channel."""
    return [
        (channel_id, key, deref(doc, message))
        for channel_id, channel in doc["channels"].items()
        for key, message in channel.get("messages", {}).items()
    ]


def test_asyncapi_version(asyncapi_doc: dict[str, Any]) -> None:
    assert str(asyncapi_doc["asyncapi"]).startswith("3.")


def test_document_matches_the_official_asyncapi_3_schema(asyncapi_doc: dict[str, Any]) -> None:
    schema = load_json(FIXTURES / "asyncapi-3.0.0.schema.json")
    errors = sorted(Draft7Validator(schema).iter_errors(asyncapi_doc), key=lambda e: e.path)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message[:200]}" for e in errors)


def test_every_local_ref_resolves(asyncapi_doc: dict[str, Any]) -> None:
    for pointer, ref in iter_refs(asyncapi_doc):
        if ref.startswith("#/"):
            _, target = resolve_ref(ref, ASYNCAPI_PATH, asyncapi_doc)
            assert isinstance(target, dict), f"{pointer}: {ref}"


def test_channels_are_the_topics(asyncapi_doc: dict[str, Any]) -> None:
    channels = asyncapi_doc["channels"]
    assert set(channels) == set(CHANNELS)
    for channel_id, channel in channels.items():
        assert channel["address"] == channel_id
        others = {k for c, k in OTHER_MESSAGES if c == channel_id}
        assert len(channel["messages"]) == 1 + len(others), channel_id
        assert others <= set(channel["messages"]), channel_id


def test_every_message_has_a_resolvable_2020_12_payload(asyncapi_doc: dict[str, Any]) -> None:
    messages = channel_messages(asyncapi_doc)
    assert messages
    for channel_id, key, message in messages:
        payload = message["payload"]
        if "schemaFormat" in payload:  # a Multi Format Schema Object
            payload = payload["schema"]
        ref = payload["$ref"]
        target_file, schema = resolve_ref(ref, ASYNCAPI_PATH, asyncapi_doc)
        assert target_file.parent == SCHEMAS_DIR, (
            f"{channel_id}/{key}: payload outside specs/schemas"
        )
        assert target_file.name == expected(channel_id, key)[2], f"{channel_id}/{key}"
        Draft202012Validator.check_schema(schema)
        assert schema["type"] == "object", f"{channel_id}/{key}"


@pytest.mark.parametrize("channel_id", sorted(CHANNELS))
def test_message_declares_cloudevents_headers(
    asyncapi_doc: dict[str, Any], channel_id: str
) -> None:
    messages = [(k, m) for c, k, m in channel_messages(asyncapi_doc) if c == channel_id]
    assert messages, f"{channel_id} has no message"
    for key, message in messages:
        ce_type, ce_sources, _ = expected(channel_id, key)
        assert message["name"] == ce_type, key
        assert message["contentType"] == "application/json", key
        headers = deref(asyncapi_doc, message["headers"])
        assert headers["type"] == "object"
        assert CE_HEADERS <= set(headers["properties"]), f"{key}: missing ce- headers"
        assert CE_HEADERS <= set(headers["required"]), f"{key}: ce- headers must be required"
        props = {name: deref(asyncapi_doc, s) for name, s in headers["properties"].items()}
        assert props["ce-type"]["const"] == ce_type
        source = props["ce-source"]
        assert tuple(source["enum"] if "enum" in source else [source["const"]]) == ce_sources
        assert props["ce-specversion"]["const"] == "1.0"
        assert props["ce-time"]["format"] == "date-time"
        assert props["ce-id"]["type"] == "string"
        # the header schema accepts a real attribute set
        for ce_source in ce_sources:
            Draft202012Validator(headers | {"properties": props}).validate(
                {
                    "ce-id": "0f8b5c8e-6a41-4f53-9a57-3f1f1d2f8d11",
                    "ce-type": ce_type,
                    "ce-source": ce_source,
                    "ce-specversion": "1.0",
                    "ce-time": "2026-11-27T15:06:41Z",
                    "content-type": "application/json",
                }
            )


def test_operations_say_who_sends_and_receives(asyncapi_doc: dict[str, Any]) -> None:
    found = set()
    for op_id, operation in asyncapi_doc["operations"].items():
        channel_id = operation["channel"]["$ref"].removeprefix("#/channels/")
        tags = {deref(asyncapi_doc, t)["name"] for t in operation["tags"]}
        assert tags == {operation["x-service"]}, op_id
        found.add((operation["x-service"], operation["action"], channel_id))
        for message in operation["messages"]:
            assert message["$ref"].startswith(f"#/channels/{channel_id}/messages/"), op_id
    assert found == OPERATIONS


def test_receivers_have_a_dead_letter_topic(asyncapi_doc: dict[str, Any]) -> None:
    for op_id, operation in asyncapi_doc["operations"].items():
        if operation["action"] != "receive":
            assert "x-subscription" not in operation, op_id
            continue
        channel_id = operation["channel"]["$ref"].removeprefix("#/channels/")
        subscription = operation["x-subscription"]
        assert subscription["topic"] == channel_id, op_id
        assert subscription["deadLetterTopic"] == f"{channel_id}-dlq", op_id
        assert subscription["subscription"] == f"{channel_id}.{operation['x-service']}", op_id
        assert subscription["maxDeliveryAttempts"] >= 5, op_id


def test_idempotency_and_dead_letters_are_described(asyncapi_doc: dict[str, Any]) -> None:
    description = asyncapi_doc["info"]["description"]
    assert "ce-id" in description and "idempotency key" in description
    assert "<topic>-dlq" in description
