"""What the three services wrote to their logs during the full e2e run (every persona's call).

Scanned: `client-api.log`, `call-scheduler.log` and `voice-orchestrator.log`, every line, JSON or
not (the simulators' log is the vendors' side and is not ours). None may contain, in any format:
a debtor's phone number, a debtor's name (full, first or last, any case), a debt or promised
amount, or a secret the deployment was configured with. Every line must be one JSON object, and
every call-scoped line must carry the `call_id` of its call.

Call-scoped lines (`CALL_SCOPED` below, by service):
- voice-orchestrator: every line our code writes (structlog lines: no `logger` key; lines from
  uvicorn and libraries have one) except the process-level events in `ORCHESTRATOR_PROCESS`.
  That is dispatch, Twilio status callbacks, the media session (tool calls, barge-ins, vendor
  failures) and finalization.
- call-scheduler: `call_dispatched` (the worker placed the call), `call_request_skipped`,
  `call_step` (docs/call-events.md).
- client-api: `call_step`, `call_requested`, `call_request_replayed`, `call_read`,
  `call_completed_fanned_out` and `webhook_attempt` (a delivery of one call's event).

The scan can fail: the matchers are checked against the values where they legitimately appear
(the stored transcripts say the names and the balance), and the number of lines per event is
checked against what the run did.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import pytest

from services.voice_orchestrator.conversation.speech import spoken_amount

from .harness import (
    BALANCE,
    CURRENCY,
    EXPECT,
    NAMES,
    SERVICES,
    E2ERun,
    LogLine,
    llm_records_of,
    read_log,
)

ORCHESTRATOR_PROCESS = frozenset(
    {
        "service_started",
        "voice_orchestrator_started",
        "sweeper_error",
        "outbox_relay_error",
        "background_task_crashed",
        "pull_failed",
        "pull_recovered",
        "message_handler_failed",
        "message_settle_failed",
        "malformed_message_dropped",
        "malformed_push_dropped",
        "unknown_event_type_dropped",
        "duplicate_message_skipped",
        "dispatch_invalid",
        "dispatch_unexpected_type",
        "media_stream_without_call_id",
        "twilio_signature_rejected",
    }
)
CALL_SCOPED: dict[str, frozenset[str]] = {
    "call-scheduler": frozenset({"call_dispatched", "call_request_skipped", "call_step"}),
    "client-api": frozenset(
        {
            "call_step",
            "call_requested",
            "call_request_replayed",
            "call_read",
            "call_completed_fanned_out",
            "webhook_attempt",
        }
    ),
}


# Answered calls in which the model used tools (silent never says anything).
TALKED = frozenset(p for p, e in EXPECT.items() if e.answered and p != "silent")


def is_call_scoped(line: LogLine) -> bool:
    assert line.data is not None
    event = line.data.get("event")
    if line.service == "voice-orchestrator":
        return "logger" not in line.data and event not in ORCHESTRATOR_PROCESS
    return event in CALL_SCOPED[line.service]


# --- what must never be logged --------------------------------------------------------------

_SEP = r"[\s.\-]?"


def _bounded(pattern: str) -> str:
    return rf"(?<!\w)(?:{pattern})(?!\w)"


def phone_patterns(e164: str) -> list[str]:
    """E.164, digits only (with or without the country code), national formats with any of
    space, dot or dash as separators, with or without parentheses, and the 7-digit local part."""
    digits = e164.removeprefix("+")
    assert len(digits) == 11 and digits[0] == "1", e164
    area, exchange, line = digits[1:4], digits[4:7], digits[7:]
    national = rf"\(?{area}\)?\s?{_SEP}{exchange}{_SEP}{line}"
    return [
        _bounded(rf"\+?1{_SEP}{national}"),
        _bounded(national),
        _bounded(rf"{exchange}{_SEP}{line}"),
    ]


def name_patterns(name: str) -> list[str]:
    parts = name.split()
    assert len(parts) >= 2 and all(len(p) >= 4 for p in parts), name
    return [_bounded(re.escape(name)), *(_bounded(re.escape(p)) for p in parts)]


def amount_patterns(amount_minor: int, currency: str, *, raw: bool) -> list[str]:
    """The formatted major amount (712.50, 712.5, $712, 712 dollars, 712.50 USD, 1,234.50) and
    the words the prompts use ("seven hundred twelve dollars and fifty cents"). `raw` adds the
    minor-unit integer (only for amounts that cannot be mistaken for another number)."""
    major, minor = divmod(amount_minor, 100)
    major_re = f"{major:,}".replace(",", ",?")
    if minor == 0:
        cents = r"\.00"  # not ".0": 150.0 is any float in a log line
    elif minor % 10:
        cents = rf"\.{minor:02d}"
    else:
        cents = rf"\.{minor // 10}0?"  # 712.50 and 712.5
    words = spoken_amount(amount_minor, currency)
    out = [
        rf"(?<![\w.]){major_re}{cents}(?!\d)",
        rf"[$]\s?{major_re}(?!\d)",
        rf"(?<![\w.]){major_re}(?:{cents})?\s*(?:dollars?|usd|{currency.lower()})(?!\w)",
        rf"(?<!\w)(?:usd|{currency.lower()})\s?{major_re}(?!\d)",
        re.escape(words),
        re.escape(words.split(" and ")[0]),  # "seven hundred twelve dollars"
    ]
    if raw:
        out.append(rf"(?<![\w.,]){amount_minor}(?![\w])")
        out.append(rf"(?<![\w.,]){re.escape(f'{amount_minor:,}')}(?![\w])")  # 71,250
    return out


@dataclass(frozen=True)
class Sensitive:
    kind: str  # phone / name / amount / secret
    label: str  # what it is (never the value itself, so a failure message does not leak it)
    pattern: re.Pattern[str]


def sensitive_values(run: E2ERun) -> list[Sensitive]:
    found: list[Sensitive] = []

    def add(kind: str, label: str, patterns: Iterable[str]) -> None:
        found.extend(Sensitive(kind, label, re.compile(p, re.IGNORECASE)) for p in patterns)

    for persona, r in run.runs.items():
        add("phone", f"{persona} debtor's phone", phone_patterns(r.debtor["phone"]))
        add("name", f"{persona} debtor's name", name_patterns(r.debtor["name"]))
    add("amount", "the balance", amount_patterns(BALANCE, CURRENCY, raw=True))
    promised = {
        r.call["payment_promise"]["amount"]["amount_minor"]
        for r in run.runs.values()
        if r.call.get("payment_promise")
    }
    for amount in sorted(promised - {BALANCE}):
        add("amount", "a promised amount", amount_patterns(amount, CURRENCY, raw=False))
    for key, value in run.secrets.items():
        add("secret", key, [re.escape(value)])
    add("secret", "the webhook signing secret", [re.escape(run.webhook_secret)])
    add("secret", "any webhook signing secret", [r"whsec_[A-Za-z0-9+/=]{8,}"])
    return found


# --- the tests ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def logs(e2e_run: E2ERun) -> dict[str, list[LogLine]]:
    return {service: read_log(e2e_run, service) for service in SERVICES}


@pytest.fixture(scope="module")
def sensitive(e2e_run: E2ERun) -> list[Sensitive]:
    return sensitive_values(e2e_run)


def test_the_searched_values_are_real_and_the_matchers_find_them(
    e2e_run: E2ERun, sensitive: list[Sensitive]
) -> None:
    runs = e2e_run.runs
    # One phone and one distinct name per debtor, as the API stored them.
    assert len({r.debtor["phone"] for r in runs.values()}) == len(EXPECT)
    assert {r.debtor["name"] for r in runs.values()} == set(NAMES.values())
    assert all(r.debtor["amount_owed"]["amount_minor"] == BALANCE for r in runs.values())
    assert all(len(v) >= 16 for v in e2e_run.secrets.values()), "empty or trivial secret"
    assert e2e_run.webhook_secret.startswith("whsec_")
    kinds = Counter(s.kind for s in sensitive)
    assert kinds["phone"] == 3 * len(EXPECT) and kinds["name"] == 3 * len(EXPECT)
    assert kinds["amount"] >= 8 and kinds["secret"] == len(e2e_run.secrets) + 2

    def hits(text: str, kind: str, label: str | None = None) -> bool:
        return any(
            s.pattern.search(text)
            for s in sensitive
            if s.kind == kind and (label is None or s.label == label)
        )

    # The matchers recognise the values where they legitimately travel through the system:
    # the agent asks for the debtor by name and states the balance in words.
    coop = runs["cooperative"].call["transcript"]
    agent_text = " ".join(t["text"] for t in coop if t["speaker"] == "agent")
    assert hits(agent_text, "name", "cooperative debtor's name")
    assert hits(agent_text, "amount")
    # ... and every format of a phone number, amount and secret.
    phone = runs["injector"].debtor["phone"]  # +1AAAEEELLLL
    a, e, ln = phone[2:5], phone[5:8], phone[8:]
    for form in (
        phone,
        phone[1:],
        phone[2:],
        f"({a}) {e}-{ln}",
        f"{a}-{e}-{ln}",
        f"{a}.{e}.{ln}",
        f"+1 {a} {e} {ln}",
        f"1-{a}-{e}-{ln}",
        f"{e}-{ln}",
    ):
        assert hits(f"to={form},", "phone", "injector debtor's phone"), form
    for form in ("71250", "712.50", "712.5", "$712", "712 dollars", "USD 712.50", "71,250"):
        assert hits(f"amount {form}.", "amount", "the balance"), form
    assert hits(NAMES["hostile"].split()[1].upper(), "name")
    assert hits(f"Bearer {e2e_run.secrets['API_KEY']}", "secret", "API_KEY")
    # ... but not the ids and numbers every log line is full of.
    assert not hits(
        '{"call_id": "8d4732b2-1e5a-491b-9741-e86cc3687100", "latency_ms": 712}', "phone"
    )
    assert not any(
        s.pattern.search('{"event": "call_placed", "latency_ms": 712, "turns": 12}')
        for s in sensitive
    )


def test_every_line_is_json_and_there_are_as_many_as_the_run_implies(
    e2e_run: E2ERun, logs: dict[str, list[LogLine]]
) -> None:
    for service, lines in logs.items():
        not_json = [f"{service}:{ln.number}" for ln in lines if ln.data is None]
        assert not not_json, not_json
        assert all(ln.data and ln.data.get("service") == service for ln in lines), service
    events = {s: Counter(ln.data["event"] for ln in lines if ln.data) for s, lines in logs.items()}
    calls = len(EXPECT)
    answered = sum(e.answered for e in EXPECT.values())
    # The SDK's campaign calls (answered, released by the scheduler, not triggered).
    sdk = len(e2e_run.sdk.calls)
    assert events["client-api"]["debtor_created"] == calls
    assert events["client-api"]["call_requested"] == calls
    assert events["client-api"]["call_completed_fanned_out"] == calls + sdk
    assert events["client-api"]["webhook_attempt"] >= calls
    assert events["call-scheduler"]["call_dispatched"] == calls + sdk
    assert events["voice-orchestrator"]["call_placed"] == calls + sdk
    assert events["voice-orchestrator"]["call_finalized"] == answered + sdk
    assert events["voice-orchestrator"]["call_ended_without_session"] == calls - answered
    call_ids = [r.call["id"] for r in e2e_run.runs.values()]
    call_ids += [str(c.id) for c in e2e_run.sdk.calls]
    tool_calls = sum(
        len(rec["reply"]["tool_calls"]) for cid in call_ids for rec in llm_records_of(e2e_run, cid)
    )
    assert events["voice-orchestrator"]["tool_call"] >= len(TALKED)  # conversations used tools
    # A barge-in may cancel a reply whose tool calls were still streaming: never more logged.
    assert events["voice-orchestrator"]["tool_call"] <= tool_calls


@pytest.mark.parametrize("service", SERVICES)
def test_no_phone_name_amount_or_secret_in_the_logs(
    logs: dict[str, list[LogLine]], sensitive: list[Sensitive], service: str
) -> None:
    lines = logs[service]
    assert len(lines) >= 10, f"{service}: only {len(lines)} lines; is this the run's log?"
    leaks = [
        f"{service}.log:{ln.number}: {s.kind} ({s.label})"
        for ln in lines
        for s in sensitive
        if s.pattern.search(ln.raw)
    ]
    assert not leaks, "\n".join(leaks)


def test_every_call_scoped_line_carries_its_call_id(
    e2e_run: E2ERun, logs: dict[str, list[LogLine]]
) -> None:
    call_ids = {r.call["id"] for r in e2e_run.runs.values()}
    sdk_ids = {str(c.id) for c in e2e_run.sdk.calls}  # the SDK's campaign, run alongside
    scoped = [ln for lines in logs.values() for ln in lines if ln.data and is_call_scoped(ln)]
    missing = [
        f"{ln.service}:{ln.number} {ln.data and ln.data['event']}"
        for ln in scoped
        if not ln.data or ln.data.get("call_id") not in call_ids | sdk_ids
    ]
    assert not missing, missing
    by_event: dict[tuple[str, str], Counter[str]] = {}
    for ln in scoped:
        assert ln.data is not None
        by_event.setdefault((ln.service, ln.data["event"]), Counter())[ln.data["call_id"]] += 1
    # Each call shows up under its own id in every service, once per one-off event.
    assert by_event[("client-api", "call_requested")] == Counter(call_ids)
    for key in (
        ("client-api", "call_completed_fanned_out"),
        ("call-scheduler", "call_dispatched"),
        ("voice-orchestrator", "call_placed"),
    ):
        assert by_event[key] == Counter(call_ids | sdk_ids), key
    answered = {r.call["id"] for r in e2e_run.runs.values() if EXPECT[r.persona].answered}
    assert by_event[("voice-orchestrator", "call_finalized")] == Counter(answered | sdk_ids)
    # The session's lines carry the right call's id, not a neighbour's: each call has as many
    # `tool_call` lines as its own LLM replies had tool calls (the OpenAI simulator's record),
    # unless a barge-in cancelled a reply mid-stream or an early request was discarded (then
    # never more).
    logged = by_event.get(("voice-orchestrator", "tool_call"), Counter())
    cut = by_event.get(("voice-orchestrator", "barge_in"), Counter()) + by_event.get(
        ("voice-orchestrator", "reply_dropped"), Counter()
    )
    for r in e2e_run.runs.values():
        cid = r.call["id"]
        made = sum(len(rec["reply"]["tool_calls"]) for rec in llm_records_of(e2e_run, cid))
        early = (r.call.get("usage") or {}).get("early_generation") or {}
        if cut[cid] or early.get("discards"):
            assert logged[cid] <= made, (r.persona, logged[cid], made)
        else:
            assert logged[cid] == made, (r.persona, logged[cid], made)
        assert (logged[cid] > 0) == (r.persona in TALKED), r.persona
