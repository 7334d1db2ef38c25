"""Code and spec cannot drift: the app serves specs/openapi/client-api.yaml, and the OpenAPI
document FastAPI generates from the routes describes the same operations (paths, methods,
operationIds, parameters, security) with the same request and response schemas."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import yaml

from services.client_api.app import create_app, generated_openapi
from services.client_api.openapi import SPEC_PATH, served_spec
from services.common.settings import Settings

METHODS = {"get", "post", "put", "patch", "delete", "head", "options"}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return served_spec()


@pytest.fixture(scope="module")
def generated(settings: Settings) -> dict[str, Any]:
    # No lifespan needed: FastAPI builds the document from the route declarations.
    return generated_openapi(create_app(settings))


def _resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        parts = node["$ref"].removeprefix("#/").split("/")
        target: Any = doc
        for part in parts:
            target = target[part]
        node = target
    return node


def _ref_name(schema: dict[str, Any] | None) -> str | None:
    if not schema:
        return None
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[1]
    for key in ("anyOf", "oneOf", "allOf"):  # `X | None` bodies
        names = [_ref_name(s) for s in schema.get(key, []) if s.get("type") != "null"]
        if len(names) == 1:
            return names[0]
    return None


def _content_schema(doc: dict[str, Any], holder: dict[str, Any]) -> str | None:
    for media in _resolve(doc, holder).get("content", {}).values():
        name = _ref_name(media.get("schema"))
        if name:
            return name
    return None


def _operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    ops: dict[tuple[str, str], dict[str, Any]] = {}
    global_security = doc.get("security")
    for path, item in doc.get("paths", {}).items():
        shared = item.get("parameters", [])
        for method, op in item.items():
            if method not in METHODS:
                continue
            params = [_resolve(doc, p) for p in [*shared, *op.get("parameters", [])]]
            body = op.get("requestBody")
            responses = {
                str(code): _content_schema(doc, resp) for code, resp in op["responses"].items()
            }
            security = op.get("security", global_security)
            ops[(path, method)] = {
                "operationId": op.get("operationId"),
                "parameters": sorted(
                    (p["name"], p["in"], bool(p.get("required", False))) for p in params
                ),
                "body": _content_schema(doc, body) if body else None,
                "body_required": bool(body and _resolve(doc, body).get("required", False)),
                "responses": responses,
                "secured": bool(security),
            }
    return ops


async def test_served_document_is_the_spec_file(settings: Settings) -> None:
    app = create_app(settings)
    # The document and the docs pages need no runtime: no lifespan here.
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        resp = await client.get("/openapi.json")
        docs = await client.get("/docs")
    assert resp.status_code == 200
    served = resp.json()
    assert served == served_spec()
    raw = yaml.safe_load(SPEC_PATH.read_text())
    assert served["paths"].keys() == raw["paths"].keys()
    assert served["info"] == raw["info"] and served["webhooks"].keys() == raw["webhooks"].keys()
    refs = [v for _, v in _iter_refs(served)]
    assert refs and all(r.startswith("#/components/") for r in refs)  # bundled
    assert docs.status_code == 200 and "/openapi.json" in docs.text


def _iter_refs(node: Any) -> Any:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                yield k, v
            else:
                yield from _iter_refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from _iter_refs(v)


def test_routes_implement_exactly_the_spec_operations(
    spec: dict[str, Any], generated: dict[str, Any]
) -> None:
    want = {k: v["operationId"] for k, v in _operations(spec).items()}
    have = {k: v["operationId"] for k, v in _operations(generated).items()}
    assert have == want


def test_each_operation_has_the_spec_parameters_bodies_and_responses(
    spec: dict[str, Any], generated: dict[str, Any]
) -> None:
    want, have = _operations(spec), _operations(generated)
    for key, op in want.items():
        got = have[key]
        assert got["parameters"] == op["parameters"], key
        assert (got["body"], got["body_required"]) == (op["body"], op["body_required"]), key
        assert got["responses"] == op["responses"], key
        assert got["secured"] == op["secured"], key


def test_generated_schemas_are_the_spec_schemas(
    spec: dict[str, Any], generated: dict[str, Any]
) -> None:
    """Every schema the routes use exists in the spec under the same name, with the same
    properties and required list (the models are generated from the spec; this catches a
    stale generated/)."""
    spec_schemas = spec["components"]["schemas"]
    for name, schema in generated["components"]["schemas"].items():
        if name not in spec_schemas:
            # Only codegen's untitled helper aliases (e.g. a map's value type) may be extra.
            assert "title" not in schema and schema.get("type") != "object", name
            continue
        target = spec_schemas[name]
        if "allOf" in target:  # WebhookEndpointCreated = WebhookEndpoint + secret
            props: set[str] = set()
            required: set[str] = set()
            for part in target["allOf"]:
                part = _resolve(spec, part)
                props |= set(part.get("properties", {}))
                required |= set(part.get("required", []))
        else:
            props = set(target.get("properties", {}))
            required = set(target.get("required", []))
        assert set(schema.get("properties", {})) == props, name
        assert set(schema.get("required", [])) == required, name
        for keyword in ("enum", "pattern", "minLength", "maxLength", "maxProperties"):
            assert schema.get(keyword) == target.get(keyword), (name, keyword)
