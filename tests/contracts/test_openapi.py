"""specs/openapi/client-api.yaml: a valid OpenAPI 3.1 document that keeps the API's promises."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
from contract_support import OPENAPI_PATH, SCHEMAS_DIR, iter_refs, load_json, resolve_ref
from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}

OPERATIONS = {
    ("post", "/v1/debtors"): "createDebtor",
    ("get", "/v1/debtors"): "listDebtors",
    ("get", "/v1/debtors/{debtor_id}"): "getDebtor",
    ("post", "/v1/debtors/{debtor_id}/calls"): "triggerCall",
    ("get", "/v1/debtors/{debtor_id}/schedule"): "getDebtorSchedule",
    ("post", "/v1/debtors/{debtor_id}/holds/{hold_id}/lift"): "liftDebtorHold",
    ("get", "/v1/calls"): "listCalls",
    ("get", "/v1/calls/{call_id}"): "getCall",
    ("get", "/v1/calls/{call_id}/events"): "listCallEvents",
    ("post", "/v1/webhook-endpoints"): "createWebhookEndpoint",
    ("get", "/v1/webhook-endpoints"): "listWebhookEndpoints",
    ("get", "/v1/webhook-deliveries"): "listWebhookDeliveries",
    ("patch", "/v1/webhook-endpoints/{endpoint_id}"): "updateWebhookEndpoint",
    ("post", "/v1/calls/{call_id}/retry"): "retryCall",
    ("post", "/v1/calls/{call_id}/cancel"): "cancelCall",
    ("get", "/v1/operator-actions"): "listOperatorActions",
    ("get", "/v1/stats/cost"): "getCostStats",
    ("post", "/v1/payments"): "createPayment",
    ("get", "/v1/promises"): "listPromises",
    ("get", "/v1/promises/{promise_id}"): "getPromise",
    ("post", "/v1/promises/{promise_id}/cancel"): "cancelPromise",
    ("post", "/v1/campaigns"): "createCampaign",
    ("get", "/v1/campaigns"): "listCampaigns",
    ("get", "/v1/campaigns/{campaign_id}"): "getCampaign",
    ("patch", "/v1/campaigns/{campaign_id}"): "updateCampaign",
    ("post", "/v1/campaigns/{campaign_id}/debtors"): "addCampaignDebtors",
    ("get", "/v1/campaigns/{campaign_id}/items"): "listCampaignItems",
    ("post", "/v1/campaigns/{campaign_id}/start"): "startCampaign",
    ("post", "/v1/campaigns/{campaign_id}/pause"): "pauseCampaign",
    ("post", "/v1/campaigns/{campaign_id}/resume"): "resumeCampaign",
    ("post", "/v1/campaigns/{campaign_id}/cancel"): "cancelCampaign",
    ("get", "/v1/campaigns/{campaign_id}/stats"): "getCampaignStats",
    ("post", "/v1/debtor-imports"): "createDebtorImport",
    ("get", "/v1/debtor-imports"): "listDebtorImports",
    ("get", "/v1/debtor-imports/{import_id}"): "getDebtorImport",
    ("get", "/v1/debtor-imports/{import_id}/errors"): "listDebtorImportErrors",
    ("get", "/v1/debtor-imports/{import_id}/errors.csv"): "downloadDebtorImportErrors",
    ("get", "/healthz"): "health",
}

# operationId -> (success status, response schema component, error statuses it must declare)
RESPONSES = {
    "createDebtor": ("201", "Debtor", {"400", "401", "409", "413", "422", "503"}),
    "listDebtors": ("200", "DebtorPage", {"400", "401", "422", "503"}),
    "getDebtor": ("200", "Debtor", {"401", "404", "422", "503"}),
    "triggerCall": ("202", "Call", {"400", "401", "404", "409", "413", "422", "503"}),
    "getDebtorSchedule": ("200", "DebtorSchedule", {"401", "404", "422", "503"}),
    "liftDebtorHold": ("200", "DebtorHold", {"400", "401", "404", "409", "413", "422", "503"}),
    "listCalls": ("200", "CallPage", {"400", "401", "422", "503"}),
    "getCall": ("200", "Call", {"401", "404", "422", "503"}),
    "listCallEvents": ("200", "CallStepEventPage", {"400", "401", "404", "422", "503"}),
    "createWebhookEndpoint": ("201", "WebhookEndpointCreated", {"400", "401", "413", "422", "503"}),
    "listWebhookEndpoints": ("200", "WebhookEndpointPage", {"400", "401", "422", "503"}),
    "listWebhookDeliveries": ("200", "WebhookDeliveryPage", {"400", "401", "422", "503"}),
    "updateWebhookEndpoint": (
        "200",
        "WebhookEndpoint",
        {"400", "401", "404", "413", "422", "503"},
    ),
    "retryCall": ("202", "CallRetryResult", {"400", "401", "404", "409", "413", "422", "503"}),
    "cancelCall": ("200", "CallCancelResult", {"400", "401", "404", "409", "413", "422", "503"}),
    "listOperatorActions": ("200", "OperatorActionPage", {"400", "401", "422", "503"}),
    "getCostStats": ("200", "CostStats", {"400", "401", "422", "503"}),
    "createPayment": ("201", "Payment", {"400", "401", "404", "409", "413", "422", "503"}),
    "listPromises": ("200", "PromisePage", {"400", "401", "422", "503"}),
    "getPromise": ("200", "Promise", {"401", "404", "422", "503"}),
    "cancelPromise": ("200", "Promise", {"401", "404", "409", "422", "503"}),
    "createCampaign": ("201", "Campaign", {"400", "401", "409", "413", "422", "503"}),
    "listCampaigns": ("200", "CampaignPage", {"400", "401", "422", "503"}),
    "getCampaign": ("200", "Campaign", {"401", "404", "422", "503"}),
    "updateCampaign": ("200", "Campaign", {"400", "401", "404", "409", "413", "422", "503"}),
    "addCampaignDebtors": (
        "200",
        "CampaignDebtorsAdded",
        {"400", "401", "404", "409", "413", "422", "503"},
    ),
    "listCampaignItems": ("200", "CampaignItemPage", {"400", "401", "404", "422", "503"}),
    **{
        op: ("200", "Campaign", {"400", "401", "404", "409", "413", "422", "503"})
        for op in ("startCampaign", "pauseCampaign", "resumeCampaign", "cancelCampaign")
    },
    "createDebtorImport": (
        "202",
        "ImportJob",
        {"400", "401", "409", "413", "415", "422", "503"},
    ),
    "listDebtorImports": ("200", "ImportJobPage", {"400", "401", "422", "503"}),
    "getDebtorImport": ("200", "ImportJob", {"401", "404", "422", "503"}),
    "listDebtorImportErrors": ("200", "ImportRowErrorPage", {"400", "401", "404", "422", "503"}),
    "health": ("200", "Health", set()),
}
# A replayed payment (same reference and body) answers 200, a new one 201.
REPLAY_STATUS = {"createPayment": "200", "createCampaign": "200"}


def operations(doc: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """operationId -> (method, path, operation)."""
    found = {}
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                found[operation["operationId"]] = (method, path, operation)
    return found


def deref(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow local `$ref`s (#/components/...) until a concrete object."""
    while "$ref" in node and node["$ref"].startswith("#/"):
        _, node = resolve_ref(node["$ref"], OPENAPI_PATH, doc)
    return node


def deref_component(doc: dict[str, Any], name: str) -> dict[str, Any]:
    """A components.schemas entry, followed into specs/schemas."""
    node, file, current = doc["components"]["schemas"][name], OPENAPI_PATH, doc
    while "$ref" in node:
        file, node = resolve_ref(node["$ref"], file, current)
        current = load_json(file) if file.suffix == ".json" else current
    return node


def test_openapi_31_document_is_valid() -> None:
    spec, base_uri = read_from_filename(str(OPENAPI_PATH))
    assert str(spec["openapi"]).startswith("3.1.")
    validate(spec, base_uri=base_uri)  # resolves the ../schemas/*.json references too


def test_operations_and_ids(openapi_doc: dict[str, Any]) -> None:
    found = {(m, p): op_id for op_id, (m, p, _) in operations(openapi_doc).items()}
    assert found == OPERATIONS


def test_every_operation_is_described(openapi_doc: dict[str, Any]) -> None:
    for op_id, (_, _, operation) in operations(openapi_doc).items():
        assert operation.get("summary"), f"{op_id}: summary"
        assert operation.get("tags"), f"{op_id}: tags"


def test_security(openapi_doc: dict[str, Any]) -> None:
    scheme = openapi_doc["components"]["securitySchemes"]["ApiKey"]
    assert scheme["type"] == "http"
    assert scheme["scheme"] == "bearer"
    assert openapi_doc["security"] == [{"ApiKey": []}]
    for op_id, (_, path, operation) in operations(openapi_doc).items():
        if path.startswith("/v1/"):
            assert "security" not in operation, f"{op_id} must keep the global bearer security"
        else:
            assert operation["security"] == [], f"{op_id} must need no auth"


@pytest.mark.parametrize("op_id", sorted(RESPONSES))
def test_responses(openapi_doc: dict[str, Any], op_id: str) -> None:
    success, component, errors = RESPONSES[op_id]
    _, _, operation = operations(openapi_doc)[op_id]
    responses = operation["responses"]
    replay = {REPLAY_STATUS[op_id]} if op_id in REPLAY_STATUS else set()
    assert {code for code in responses if code.startswith("2")} == {success} | replay
    body = deref(openapi_doc, responses[success])["content"]["application/json"]["schema"]
    assert body == {"$ref": f"#/components/schemas/{component}"}
    declared_errors = {code for code in responses if code[0] in "45"}
    assert declared_errors == errors, f"{op_id} declares {sorted(declared_errors)}"
    for code in declared_errors:
        response = deref(openapi_doc, responses[code])
        assert list(response["content"]) == ["application/problem+json"], f"{op_id} {code}"
        schema = response["content"]["application/problem+json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Problem"}, f"{op_id} {code}"


def test_error_responses_are_shared_components(openapi_doc: dict[str, Any]) -> None:
    for op_id, (_, _, operation) in operations(openapi_doc).items():
        for code, response in operation["responses"].items():
            if code[0] in "45":
                assert set(response) == {"$ref"}, f"{op_id} {code}: use components.responses"
                assert response["$ref"].startswith("#/components/responses/")


def test_problem_schema(openapi_doc: dict[str, Any]) -> None:
    problem = deref_component(openapi_doc, "Problem")
    assert set(problem["properties"]) >= {"type", "title", "status", "detail", "instance", "errors"}
    field_error = deref_component(openapi_doc, "ProblemFieldError")
    assert set(field_error["required"]) == {"field", "message"}


def test_pagination(openapi_doc: dict[str, Any]) -> None:
    limit = openapi_doc["components"]["parameters"]["Limit"]
    assert limit["in"] == "query"
    assert limit["schema"] == {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}
    cursor = openapi_doc["components"]["parameters"]["Cursor"]
    assert cursor["in"] == "query"
    assert cursor["schema"]["type"] == "string"
    for op_id, (_, _, operation) in operations(openapi_doc).items():
        if not op_id.startswith("list"):
            continue
        refs = [p.get("$ref") for p in operation["parameters"]]
        assert "#/components/parameters/Limit" in refs, op_id
        assert "#/components/parameters/Cursor" in refs, op_id
        page = deref_component(openapi_doc, RESPONSES[op_id][1])
        assert set(page["required"]) == {"data", "next_cursor"}, op_id
        assert page["properties"]["next_cursor"]["type"] == ["string", "null"], op_id


def test_list_filters(openapi_doc: dict[str, Any]) -> None:
    ops = operations(openapi_doc)

    def query_names(op_id: str) -> set[str]:
        params = [deref(openapi_doc, p) for p in ops[op_id][2]["parameters"]]
        return {p["name"] for p in params if p["in"] == "query"}

    assert query_names("listCalls") == {"debtor_id", "status", "limit", "cursor"}
    assert query_names("listPromises") == {
        "debtor_id",
        "status",
        "due_from",
        "due_to",
        "limit",
        "cursor",
    }
    assert query_names("listWebhookDeliveries") == {
        "event",
        "status",
        "endpoint_id",
        "limit",
        "cursor",
    }
    assert query_names("listOperatorActions") == {
        "target_kind",
        "target_id",
        "actor",
        "action",
        "limit",
        "cursor",
    }


def test_trigger_call_idempotency_key(openapi_doc: dict[str, Any]) -> None:
    _, _, operation = operations(openapi_doc)["triggerCall"]
    header = deref(openapi_doc, operation["parameters"][0])
    assert (header["name"], header["in"], header["required"]) == (
        "Idempotency-Key",
        "header",
        False,
    )
    assert header["schema"] == {"type": "string", "minLength": 1, "maxLength": 255}
    assert operation["requestBody"]["required"] is False


def test_links_for_stateful_testing(openapi_doc: dict[str, Any]) -> None:
    ops = operations(openapi_doc)
    expected = {
        ("createDebtor", "201"): {
            "GetDebtor": ("getDebtor", "debtor_id"),
            "TriggerCall": ("triggerCall", "debtor_id"),
        },
        ("triggerCall", "202"): {
            "GetCall": ("getCall", "call_id"),
            "ListCallEvents": ("listCallEvents", "call_id"),
        },
    }
    for (op_id, status), links in expected.items():
        declared = ops[op_id][2]["responses"][status]["links"]
        assert set(declared) == set(links), op_id
        for name, (target, param) in links.items():
            assert declared[name]["operationId"] == target
            assert declared[name]["parameters"] == {param: "$response.body#/id"}
            target_path = ops[target][1]
            assert "{" + param + "}" in target_path


def test_webhook_call_completed(openapi_doc: dict[str, Any]) -> None:
    webhook = openapi_doc["webhooks"]["call.completed"]
    assert set(webhook) == {"post"}
    post = webhook["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/CallCompletedEvent"}
    headers = {p["name"]: p for p in post["parameters"] if p["in"] == "header"}
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert all(h["required"] for h in headers.values())
    assert list(post["responses"]) == ["2XX"]


def test_every_webhook_event_type_is_a_documented_webhook(openapi_doc: dict[str, Any]) -> None:
    """The `WebhookEventType` enum (what an endpoint subscribes to) lists exactly the
    `webhooks:` entries, each signed with the Standard Webhooks headers."""
    enum = deref_component(openapi_doc, "WebhookEventType")["enum"]
    assert set(enum) == set(openapi_doc["webhooks"])
    for name, webhook in openapi_doc["webhooks"].items():
        post = webhook["post"]
        headers = {p["name"] for p in post["parameters"] if p["in"] == "header"}
        assert headers == {"webhook-id", "webhook-timestamp", "webhook-signature"}, name


def test_components_point_into_specs_schemas_and_name_generated_classes(
    openapi_doc: dict[str, Any],
) -> None:
    """Every schema lives in specs/schemas once; its component name is its generated class name,
    and the generated class is importable under that name (no twins, no renames)."""
    for name, component in openapi_doc["components"]["schemas"].items():
        assert set(component) == {"$ref"}, f"{name}: define it in specs/schemas, not inline"
        file_part, _, fragment = component["$ref"].partition("#")
        target_file = (OPENAPI_PATH.parent / file_part).resolve()
        assert target_file.parent == SCHEMAS_DIR, name
        _, target = resolve_ref(component["$ref"], OPENAPI_PATH, openapi_doc)
        assert target["title"] == name, f"{name}: component name must equal the schema title"
        module = importlib.import_module(f"generated.{Path(file_part).stem}")
        assert hasattr(module, name), f"generated.{Path(file_part).stem} has no {name}"
        if fragment:
            assert fragment == f"/$defs/{name}"


def test_every_local_ref_resolves(openapi_doc: dict[str, Any]) -> None:
    for pointer, ref in iter_refs(openapi_doc):
        if ref.startswith("#/"):
            _, target = resolve_ref(ref, OPENAPI_PATH, openapi_doc)
            assert isinstance(target, dict), f"{pointer}: {ref}"
