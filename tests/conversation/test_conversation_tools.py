"""Tool schemas (OpenAI function-tool form) and the GPT-5-mini request parameters."""

from __future__ import annotations

from typing import Any

from services.voice_orchestrator.conversation import ToolName, llm_request_params, tool_schemas

CONTRACT_ARGS = {
    "confirm_identity": set(),
    "verify_fact": {"answer"},
    "record_payment_promise": {"amount_minor", "currency", "date"},
    "record_payment_plan": {"installments", "currency", "settlement"},
    "report_hardship": {"note"},
    "request_validation_notice": set(),
    "identify_caller": set(),
    "schedule_callback": {"when", "reason"},
    "report_dispute": {"reason"},
    "report_wrong_party": set(),
    "request_no_further_calls": set(),
    "end_call": {"reason"},
}


def _walk(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        return [node, *(x for v in node.values() for x in _walk(v))]
    if isinstance(node, list):
        return [x for v in node for x in _walk(v)]
    return []


def test_tool_names_and_arguments_match_the_contract() -> None:
    tools = tool_schemas()
    assert [t["function"]["name"] for t in tools] == [t.value for t in ToolName]
    for tool in tools:
        assert tool["type"] == "function"
        fn = tool["function"]
        assert set(fn) == {"name", "description", "parameters", "strict"}
        params = fn["parameters"]
        assert params["type"] == "object"
        assert set(params["properties"]) == CONTRACT_ARGS[fn["name"]]
        # Strict mode: all properties required, nothing extra.
        assert set(params["required"]) == set(params["properties"])
        assert params["additionalProperties"] is False
        assert fn["strict"] is True
        assert not any("title" in node for node in _walk(params))


def test_argument_formats() -> None:
    by_name = {t["function"]["name"]: t["function"]["parameters"] for t in tool_schemas()}
    promise = by_name["record_payment_promise"]["properties"]
    assert promise["amount_minor"]["type"] == "integer"
    assert promise["amount_minor"]["exclusiveMinimum"] == 0
    assert promise["currency"]["pattern"] == "^[A-Z]{3}$"
    assert promise["date"] == {**promise["date"], "type": "string", "format": "date"}
    plan = by_name["record_payment_plan"]["properties"]
    assert plan["installments"]["type"] == "array"
    assert (plan["installments"]["minItems"], plan["installments"]["maxItems"]) == (1, 36)
    item = plan["installments"]["items"]  # inline, and strict like the top level
    assert item["type"] == "object" and item["additionalProperties"] is False
    assert set(item["required"]) == set(item["properties"]) == {"amount_minor", "date"}
    assert item["properties"]["amount_minor"]["exclusiveMinimum"] == 0
    assert item["properties"]["date"]["format"] == "date"
    assert plan["settlement"]["type"] == "boolean"
    assert "$defs" not in by_name["record_payment_plan"] and not any(
        "$ref" in node for node in _walk(by_name["record_payment_plan"])
    )
    when = by_name["schedule_callback"]["properties"]["when"]
    assert when["type"] == "string" and when["format"] == "date-time"


def test_llm_request_params() -> None:
    tools = tool_schemas()
    messages = [{"role": "system", "content": "x"}]
    params = llm_request_params(
        model="gpt-5-mini", tools=tools, messages=messages, max_completion_tokens=200
    )
    assert params == {
        "model": "gpt-5-mini",
        "stream": True,
        "stream_options": {"include_usage": True},
        "reasoning_effort": "minimal",
        "verbosity": "low",
        "max_completion_tokens": 200,
        "messages": messages,
        "tools": tools,
        "tool_choice": "auto",
        "parallel_tool_calls": False,
    }
    bare = llm_request_params(model="m", tools=[], prompt_cache_key="call-1")
    assert "tools" not in bare and "parallel_tool_calls" not in bare
    assert bare["prompt_cache_key"] == "call-1" and "messages" not in bare
