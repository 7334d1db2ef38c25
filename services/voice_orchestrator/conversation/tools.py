"""The LLM's function tools: Pydantic argument models, their OpenAI `tools=` schemas, parsing.

The schemas are generated from the models, so what the model is told and what the core accepts
cannot drift apart. Constraints that OpenAI strict mode supports (pattern, format, exclusive
minimum) are in the schema; everything that depends on the call (balance, currency, the date
window, calling hours) is checked by the conversation core, which answers with a reason.
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from .enums import ToolName


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConfirmIdentityArgs(_Args):
    pass


class VerifyFactArgs(_Args):
    answer: str = Field(
        description="What the person said when asked for the fact on file, word for word."
    )


class RecordPaymentPromiseArgs(_Args):
    amount_minor: int = Field(
        gt=0,
        strict=True,
        description="Promised amount in minor units (cents): 45000 means 450.00.",
    )
    currency: str = Field(
        pattern=r"^[A-Z]{3}$",
        description="ISO 4217 code; must be the account's currency from CALL FACTS.",
    )
    date: dt.date = Field(
        description="Payment date, YYYY-MM-DD, from today up to latest_promise_date."
    )


class InstallmentArgs(_Args):
    amount_minor: int = Field(
        gt=0, strict=True, description="This payment's amount in minor units (cents)."
    )
    date: dt.date = Field(description="This payment's date, YYYY-MM-DD.")


class RecordPaymentPlanArgs(_Args):
    installments: list[InstallmentArgs] = Field(
        min_length=1,
        max_length=36,
        description="The payments, in date order, each on a later date than the one before.",
    )
    currency: str = Field(
        pattern=r"^[A-Z]{3}$",
        description="ISO 4217 code; must be the account's currency from CALL FACTS.",
    )
    settlement: bool = Field(
        description=(
            "true only if the debtor accepted an offer marked settlement (a reduced total "
            "that settles the account); otherwise false: the payments cover the full balance."
        )
    )


class ReportHardshipArgs(_Args):
    note: str = Field(
        description="The debtor's situation in their words, in brief (job loss, illness...)."
    )


class RequestValidationNoticeArgs(_Args):
    pass


class IdentifyCallerArgs(_Args):
    pass


class ScheduleCallbackArgs(_Args):
    when: AwareDatetime = Field(
        description=(
            "When to call back: ISO 8601 date-time with UTC offset in the debtor's time zone, "
            "e.g. 2026-11-28T10:00:00-05:00; between 8am and 9pm their time."
        )
    )
    reason: str = Field(description="Short reason, e.g. 'debtor asked to be called tomorrow'.")


class ReportDisputeArgs(_Args):
    reason: str = Field(description="The debtor's reason for disputing the debt, in brief.")


class ReportWrongPartyArgs(_Args):
    pass


class RequestNoFurtherCallsArgs(_Args):
    pass


class EndCallArgs(_Args):
    reason: str = Field(description="Why the call ends, in brief.")


@dataclass(frozen=True)
class ToolSpec:
    name: ToolName
    description: str
    args: type[_Args]


TOOL_SPECS: tuple[ToolSpec, ...] = (
    ToolSpec(
        ToolName.CONFIRM_IDENTITY,
        "Call when the person on the line has confirmed they are the debtor named in CALL "
        "FACTS (or their spouse). Required before anything about the debt is said.",
        ConfirmIdentityArgs,
    ),
    ToolSpec(
        ToolName.VERIFY_FACT,
        "Call with the person's answer after the system asked them for a fact on file "
        "(fact_to_verify in CALL FACTS). The system compares it and tells you only whether it "
        "matched; you never know the fact itself.",
        VerifyFactArgs,
    ),
    ToolSpec(
        ToolName.RECORD_PAYMENT_PROMISE,
        "Record the debtor's promise to pay an amount on a date. Only after identity is "
        "confirmed; amount at most the balance, in the account currency; date between today "
        "and latest_promise_date.",
        RecordPaymentPromiseArgs,
    ),
    ToolSpec(
        ToolName.RECORD_PAYMENT_PLAN,
        "Record a payment plan the debtor agreed to: several payments (amount and date each) "
        "that together cover the balance. Only after identity is confirmed. If it is refused, "
        "the result says why and usually carries an offer: a plan that works, to propose.",
        RecordPaymentPlanArgs,
    ),
    ToolSpec(
        ToolName.REPORT_HARDSHIP,
        "Record that the debtor cannot pay as asked because of hardship (job loss, illness, "
        "a family crisis...). The result carries the gentlest plan available to offer, or says "
        "to offer a callback.",
        ReportHardshipArgs,
    ),
    ToolSpec(
        ToolName.REQUEST_VALIDATION_NOTICE,
        "The debtor wants the debt in writing before discussing it (a letter, a written "
        "notice, proof). The system confirms a written notice will be sent and ends the call.",
        RequestValidationNoticeArgs,
    ),
    ToolSpec(
        ToolName.IDENTIFY_CALLER,
        "The person asks who is calling, whether this is a scam, or how to check the call is "
        "real. The system says who you are and the company's number to call to check.",
        IdentifyCallerArgs,
    ),
    ToolSpec(
        ToolName.SCHEDULE_CALLBACK,
        "Schedule a call back at a time the person asked for (or when now is not a good time).",
        ScheduleCallbackArgs,
    ),
    ToolSpec(
        ToolName.REPORT_DISPUTE,
        "Record at once that the debtor disputes the debt (says they do not owe it, it is "
        "not theirs, the amount is wrong, or it was already paid). Do not argue.",
        ReportDisputeArgs,
    ),
    ToolSpec(
        ToolName.REPORT_WRONG_PARTY,
        "Record that the person reached is not the debtor (wrong number or someone else).",
        ReportWrongPartyArgs,
    ),
    ToolSpec(
        ToolName.REQUEST_NO_FURTHER_CALLS,
        "Record at once that the person asked not to be called again.",
        RequestNoFurtherCallsArgs,
    ),
    ToolSpec(
        ToolName.END_CALL,
        "End the call after your goodbye. Allowed once an outcome is recorded (or in closing).",
        EndCallArgs,
    ),
)
TOOLS_BY_NAME: dict[ToolName, ToolSpec] = {spec.name: spec for spec in TOOL_SPECS}


def _strip_titles(schema: Any) -> Any:
    """Pydantic adds `title` everywhere; it is noise in the prompt (and costs tokens)."""
    if isinstance(schema, dict):
        return {k: _strip_titles(v) for k, v in schema.items() if k != "title"}
    if isinstance(schema, list):
        return [_strip_titles(v) for v in schema]
    return schema


def _inline_refs(schema: Any, defs: dict[str, Any]) -> Any:
    """Nested models inline (no `$defs`): each object's schema is where the model reads it."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline_refs(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline_refs(v, defs) for k, v in schema.items() if k != "$defs"}
    if isinstance(schema, list):
        return [_inline_refs(v, defs) for v in schema]
    return schema


def _strict_objects(schema: Any) -> Any:
    """OpenAI strict mode: in every object, every property required and no extra keys."""
    if isinstance(schema, dict):
        out = {k: _strict_objects(v) for k, v in schema.items()}
        if out.get("type") == "object":
            out.setdefault("properties", {})
            out["required"] = list(out["properties"])
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict_objects(v) for v in schema]
    return schema


def parameters_schema(args: type[BaseModel]) -> dict[str, Any]:
    raw = args.model_json_schema()
    schema: dict[str, Any] = _strip_titles(_inline_refs(raw, raw.get("$defs", {})))
    schema["type"] = "object"
    result: dict[str, Any] = _strict_objects(schema)
    return result


def _build_schemas() -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "function": {
                "name": spec.name.value,
                "description": spec.description,
                "parameters": parameters_schema(spec.args),
                "strict": True,
            },
        }
        for spec in TOOL_SPECS
    ]


_SCHEMAS = _build_schemas()


def tool_schemas() -> list[dict[str, Any]]:
    """The OpenAI `tools=` list. A fresh copy each time: callers may mutate it."""
    return copy.deepcopy(_SCHEMAS)


class ArgumentError(ValueError):
    """The arguments JSON did not fit the tool's model; the message is meant for the LLM."""


def parse_arguments(spec: ToolSpec, arguments: str) -> _Args:
    raw = arguments.strip() or "{}"  # some models send "" for no-argument tools
    try:
        return spec.args.model_validate_json(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False)[:3]:
            where = ".".join(str(p) for p in err["loc"]) or "arguments"
            problems.append(f"{where}: {err['msg']}")
        raise ArgumentError("; ".join(problems)) from None
