"""OpenAI Chat Completions (``POST /v1/chat/completions``), streaming (SSE) and not, driven by
the deterministic collector policy.

Timing: the first chunk with content (or a tool call) arrives ``ttft`` after the request, plus
the reasoning tokens the requested ``reasoning_effort`` implies at the streaming speed; then one
chunk per token piece at ``tokens_per_s``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from simulators.faults import FaultRule
from simulators.network import NETWORK_KEY, PhoneNetwork
from simulators.openai.policy import PolicyReply, respond
from simulators.openai.tokens import PromptCache, count_tokens, prompt_text, prompt_tokens

CACHE_KEY = web.AppKey("prompt_cache", PromptCache)

# Reasoning tokens spent before the first output token, per reasoning_effort (deterministic).
REASONING_TOKENS = {"none": 0, "minimal": 0, "low": 64, "medium": 192, "high": 512}
_VERBOSITY = ("low", "medium", "high")
_PIECE_RE = re.compile(r"\s*\S+")  # a "token" piece: a word with its leading space
_SYSTEM_FINGERPRINT = "fp_sim0000001"


def openai_error(
    status: int, message: str, param: str | None = None, code: str | None = None
) -> web.Response:
    return web.json_response(
        {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": param,
                "code": code,
            }
        },
        status=status,
    )


def resolved_model(model: str) -> str:
    """The dated snapshot name the API reports for an alias."""
    return {"gpt-5-mini": "gpt-5-mini-2025-08-07", "gpt-5": "gpt-5-2025-08-07"}.get(model, model)


def _validate(body: dict[str, Any]) -> web.Response | None:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return openai_error(400, "you must provide a model parameter", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return openai_error(400, "'messages' must be a non-empty array", "messages")
    if model.startswith(("gpt-5", "o1", "o3", "o4")):
        # Reasoning models reject the sampling knobs of older chat models.
        if "max_tokens" in body:
            return openai_error(
                400,
                "Unsupported parameter: 'max_tokens' is not supported with this model. "
                "Use 'max_completion_tokens' instead.",
                "max_tokens",
                "unsupported_parameter",
            )
        temp = body.get("temperature")
        if temp is not None and temp != 1:
            return openai_error(
                400,
                f"Unsupported value: 'temperature' does not support {temp} with this model. "
                "Only the default (1) value is supported.",
                "temperature",
                "unsupported_value",
            )
    effort = body.get("reasoning_effort")
    if effort is not None and effort not in REASONING_TOKENS:
        return openai_error(
            400, f"Invalid value for 'reasoning_effort': {effort!r}", "reasoning_effort"
        )
    verbosity = body.get("verbosity")
    if verbosity is not None and verbosity not in _VERBOSITY:
        return openai_error(400, f"Invalid value for 'verbosity': {verbosity!r}", "verbosity")
    return None


def _tool_choice_tools(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The tools the policy may call, after ``tool_choice``."""
    tools = body.get("tools") or None
    choice = body.get("tool_choice")
    if tools is None or choice == "none":
        return None
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        return [t for t in tools if (t.get("function") or {}).get("name") == name]
    return tools


def _call_id(seed: str, index: int) -> str:
    return "call_" + hashlib.sha256(f"{seed}/{index}".encode()).hexdigest()[:24]


class Completion:
    """One request's reply, split into the pieces that will be streamed."""

    def __init__(self, body: dict[str, Any], reply: PolicyReply, cache: PromptCache) -> None:
        self.body = body
        self.id = "chatcmpl-" + uuid.uuid4().hex[:24]
        self.created = int(time.time())
        self.model = resolved_model(str(body["model"]))
        messages = body["messages"]
        tools = body.get("tools") or None
        seed = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()
        self.text = reply.text or ""
        self.tool_calls = [
            (_call_id(seed, i), name, args) for i, (name, args) in enumerate(reply.tool_calls)
        ]
        effort = body.get("reasoning_effort") or "medium"  # the API default for gpt-5 models
        self.reasoning_tokens = REASONING_TOKENS.get(effort, 0)
        self.prompt_tokens = prompt_tokens(messages, tools)
        self.cached_tokens = cache.lookup_and_store(
            prompt_text(messages, tools), self.prompt_tokens
        )
        limit = body.get("max_completion_tokens")
        self.finish_reason = "tool_calls" if self.tool_calls else "stop"
        out_tokens = count_tokens(self.text) + sum(
            count_tokens(name) + count_tokens(args) for _, name, args in self.tool_calls
        )
        if isinstance(limit, int) and self.reasoning_tokens + out_tokens > limit:
            # Truncate like the API: visible text cut to what fits, no tool calls.
            room = max(0, limit - self.reasoning_tokens)
            self.text = self.text[: room * 4]
            self.tool_calls = []
            self.finish_reason = "length"
            out_tokens = count_tokens(self.text)
        self.completion_tokens = self.reasoning_tokens + out_tokens

    def usage(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": self.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def message(self) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "role": "assistant",
            "content": self.text if (self.text or not self.tool_calls) else None,
            "refusal": None,
            "annotations": [],
        }
        if self.tool_calls:
            msg["tool_calls"] = [
                {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
                for cid, name, args in self.tool_calls
            ]
        return msg

    def chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        c: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "service_tier": "default",
            "system_fingerprint": _SYSTEM_FINGERPRINT,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if (self.body.get("stream_options") or {}).get("include_usage"):
            c["usage"] = None
        return c

    def deltas(self) -> list[dict[str, Any]]:
        """Content pieces first, then each tool call (header, then argument fragments)."""
        out: list[dict[str, Any]] = []
        pieces = _PIECE_RE.findall(self.text)
        if pieces or not self.tool_calls:
            out.append({"role": "assistant", "content": "", "refusal": None})
            out.extend({"content": p} for p in pieces)
        for i, (cid, name, args) in enumerate(self.tool_calls):
            head = {
                "index": i,
                "id": cid,
                "type": "function",
                "function": {"name": name, "arguments": ""},
            }
            if not out:
                out.append({"role": "assistant", "content": None, "tool_calls": [head]})
            else:
                out.append({"tool_calls": [head]})
            for j in range(0, len(args), 8):
                out.append(
                    {"tool_calls": [{"index": i, "function": {"arguments": args[j : j + 8]}}]}
                )
        return out


async def chat_completions(request: web.Request) -> web.StreamResponse:
    network = request.app[NETWORK_KEY]
    cfg = network.config
    header = request.headers.get("Authorization", "")
    key = header[7:] if header.startswith("Bearer ") else ""
    if not key or (cfg.openai_api_key and key != cfg.openai_api_key):
        return web.json_response(
            {
                "error": {
                    "message": "Incorrect API key provided.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "invalid_api_key",
                }
            },
            status=401,
        )
    received = asyncio.get_running_loop().time()
    raw = await request.text()
    try:
        body = json.loads(raw)
    except json.JSONDecodeError:
        return openai_error(400, "We could not parse the JSON body of your request.")
    if not isinstance(body, dict):
        return openai_error(400, "The request body must be a JSON object.")
    fault = _take_fault(network, raw)
    if fault is not None and fault.kind == "status":
        return _fault_response(network, fault, body)
    started = received
    if fault is not None and fault.kind == "hang_s":
        if not await _hang(request, network, fault, body):
            return web.Response(status=408)  # nobody is listening any more
        started = asyncio.get_running_loop().time()  # the model starts only now
    invalid = _validate(body)
    if invalid is not None:
        return invalid
    reply = respond(body["messages"], _tool_choice_tools(body))
    comp = Completion(body, reply, request.app[CACHE_KEY])
    record: dict[str, Any] = {
        "id": comp.id,
        "at": datetime.now(UTC).isoformat(),
        "model": body["model"],
        "stream": bool(body.get("stream")),
        "params": {k: v for k, v in body.items() if k not in ("messages", "tools")},
        "messages": body["messages"],
        "tools": [(t.get("function") or {}).get("name") for t in body.get("tools") or []],
        "reply": {"text": comp.text, "tool_calls": [[n, a] for _, n, a in comp.tool_calls]},
        "finish_reason": comp.finish_reason,
        "usage": comp.usage(),
    }
    network.records.openai.append(record)

    loop = asyncio.get_running_loop()
    tps = max(1e-3, cfg.openai_tokens_per_s)
    ttft = network.jittered("openai", cfg.openai_ttft_ms / 1000, cfg.openai_ttft_sigma)
    record["ttft_s"] = round(ttft, 4)
    first_at = started + ttft + comp.reasoning_tokens / tps
    if not body.get("stream"):
        out_tokens = comp.completion_tokens - comp.reasoning_tokens
        await asyncio.sleep(max(0.0, first_at + out_tokens / tps - loop.time()))
        if fault is not None and fault.kind == "drop_mid_stream_after_chunks":
            # Nothing to cut mid-way: the connection drops before the answer.
            return _drop_stream(request, web.StreamResponse(), network, fault, record, 0)
        return web.json_response(
            {
                "id": comp.id,
                "object": "chat.completion",
                "created": comp.created,
                "model": comp.model,
                "choices": [
                    {
                        "index": 0,
                        "message": comp.message(),
                        "logprobs": None,
                        "finish_reason": comp.finish_reason,
                    }
                ],
                "usage": comp.usage(),
                "service_tier": "default",
                "system_fingerprint": _SYSTEM_FINGERPRINT,
            }
        )

    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "x-request-id": "req_" + uuid.uuid4().hex,
        }
    )
    await resp.prepare(request)

    async def send(obj: dict[str, Any] | str) -> None:
        data = obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":"))
        await resp.write(f"data: {data}\n\n".encode())

    deltas = comp.deltas()
    # The role-only first delta goes out together with the first content piece.
    first = 2 if len(deltas) > 1 and deltas[0].get("content") == "" else 1
    interval = 1 / tps
    next_at = first_at
    # A cut stream never gets its finish_reason chunk, however short the reply.
    drop_after = -1
    if fault is not None and fault.kind == "drop_mid_stream_after_chunks":
        drop_after = min(int(fault.value), len(deltas))
    for i in range(0, len(deltas) + 1):
        if i == drop_after:
            return _drop_stream(request, resp, network, fault, record, i)
        if i == len(deltas):
            break
        if i == 0 or i >= first:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            next_at += interval
        await send(comp.chunk(deltas[i]))
    await send(comp.chunk({}, comp.finish_reason))
    if (body.get("stream_options") or {}).get("include_usage"):
        usage_chunk = comp.chunk({})
        usage_chunk["choices"] = []
        usage_chunk["usage"] = comp.usage()
        await send(usage_chunk)
    await send("[DONE]")
    await resp.write_eof()
    record["latency_s"] = round(loop.time() - received, 3)
    return resp


# ---- faults (POST /_sim/faults) -------------------------------------------------------------
_ZERO_USAGE = {
    "prompt_tokens": 0,
    "completion_tokens": 0,
    "total_tokens": 0,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
}
_FAULT_ERRORS = {
    429: (
        "tokens",
        "rate_limit_exceeded",
        "Rate limit reached for {model} in organization org-simulator on tokens per min (TPM): "
        "Limit 200000, Used 200000, Requested 1500. Please try again in {wait}. Visit "
        "https://platform.openai.com/account/rate-limits to learn more.",
    ),
    500: (
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The server is overloaded or not ready yet."),
}


def _take_fault(network: PhoneNetwork, raw: str) -> FaultRule | None:
    """The first live OpenAI rule whose ``match`` is in this request body (one firing)."""
    for rule in network.faults.candidates(
        "openai", "status", "hang_s", "drop_mid_stream_after_chunks"
    ):
        if (rule.match is None or rule.match in raw) and rule.take():
            return rule
    return None


def _fault_record(
    network: PhoneNetwork, rule: FaultRule, body: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    """The request as the other records show it, with the fault and nothing billed."""
    record: dict[str, Any] = {
        "id": "chatcmpl-" + uuid.uuid4().hex[:24],
        "at": datetime.now(UTC).isoformat(),
        "model": body.get("model"),
        "stream": bool(body.get("stream")),
        "params": {k: v for k, v in body.items() if k not in ("messages", "tools")},
        "messages": body.get("messages"),
        "tools": [(t.get("function") or {}).get("name") for t in body.get("tools") or []],
        "reply": None,
        "finish_reason": None,
        "usage": dict(_ZERO_USAGE),
        "fault": {"rule": rule.id, rule.kind: rule.value, **extra},
    }
    network.records.openai.append(record)
    network.faults.log(rule, request=record["id"], **extra)
    return record


def _fault_response(network: PhoneNetwork, rule: FaultRule, body: dict[str, Any]) -> web.Response:
    status = int(rule.value)
    _fault_record(network, rule, body, status=status)
    kind, code, message = _FAULT_ERRORS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None, "Error.")
    )
    headers = {"x-request-id": "req_" + uuid.uuid4().hex}
    wait = rule.retry_after_s
    if wait is not None:
        headers["retry-after"] = str(max(1, math.ceil(wait)))
        headers["retry-after-ms"] = str(round(wait * 1000))
    text = message.format(model=body.get("model"), wait=f"{wait if wait is not None else 1:g}s")
    return web.json_response(
        {"error": {"message": text, "type": kind, "param": None, "code": code}},
        status=status,
        headers=headers,
    )


async def _hang(
    request: web.Request, network: PhoneNetwork, rule: FaultRule, body: dict[str, Any]
) -> bool:
    """Hold the request ``hang_s`` before answering; False if the client left meanwhile."""
    record = _fault_record(network, rule, body)
    loop = asyncio.get_running_loop()
    until = loop.time() + rule.value
    while loop.time() < until:
        transport = request.transport
        if transport is None or transport.is_closing():
            record["fault"]["client_gave_up_after_s"] = round(rule.value - (until - loop.time()), 3)
            return False
        await asyncio.sleep(min(0.05, max(0.0, until - loop.time())))
    network.records.openai.remove(record)  # answered after all: the real record follows
    return True


def _drop_stream(
    request: web.Request,
    resp: web.StreamResponse,
    network: PhoneNetwork,
    rule: FaultRule | None,
    record: dict[str, Any],
    sent: int,
) -> web.StreamResponse:
    """Cut the connection mid-stream: no final chunk, no usage, no ``[DONE]``."""
    assert rule is not None
    record["fault"] = {"rule": rule.id, rule.kind: rule.value}
    record["usage"] = dict(_ZERO_USAGE)
    network.faults.log(rule, request=record["id"], chunks_sent=sent)
    if request.transport is not None:
        request.transport.abort()
    return resp


def add_openai_routes(app: web.Application) -> None:
    app[CACHE_KEY] = PromptCache()
    app.router.add_post("/v1/chat/completions", chat_completions)
