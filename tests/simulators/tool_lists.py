"""The function tools the simulator tests offer the simulated model, by name: the product's
tools before payment plans (the simulator must still work with them) and with them. Written
out, not taken from the product, so these tests pin the simulator's side of the contract."""

from __future__ import annotations

from typing import Any

MVP_TOOL_NAMES = (
    "confirm_identity",
    "record_payment_promise",
    "schedule_callback",
    "report_dispute",
    "report_wrong_party",
    "request_no_further_calls",
    "end_call",
)
PLAN_TOOL_NAMES = (
    *MVP_TOOL_NAMES,
    "record_payment_plan",
    "report_hardship",
    "request_validation_notice",
    "identify_caller",
)


def tool_defs(
    names: tuple[str, ...] | list[str] = MVP_TOOL_NAMES,
    parameters: dict[str, Any] | None = None,
    described: bool = False,
) -> list[dict[str, Any]]:
    """The OpenAI `tools=` list for `names` (the simulator reads only the names)."""
    out = []
    for name in names:
        function: dict[str, Any] = {"name": name}
        if described:
            function["description"] = f"{name} tool"
        function["parameters"] = dict(parameters or {})
        out.append({"type": "function", "function": function})
    return out
