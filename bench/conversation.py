"""The conversation report: every persona on every stage, the yardstick for prompt versions.

    python -m bench.conversation [--stages early,late] [--personas cooperative,negotiator]
    python -m bench.conversation --real-vendors      # the real model (OPENAI_API_KEY), never in CI

Starts the whole local deployment once, places one call per persona and stage (every persona of
a stage at once, stage after stage), reads each call's view and its step events, and writes
bench/results/conversation.json and conversation.png (with --real-vendors: conversation-real.*).
Per persona and stage: outcome (and whether it is the persona's expected one), promised share of
the balance, installments (the plan's, one for a single promise), turns, duration, cost, the
prompt version and variant, whether the disclosure came out right and the refused tool calls with
their reasons (and whether they came out right); summaries per stage, per prompt and overall.
How to read it: docs/conversation.md, "Conversation report".
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.harness import RESULTS, BenchRun, run, write_results

STAGES = ("pre_delinquency", "early", "late")
BALANCE_MINOR = 45_000
CURRENCY = "USD"

# The outcome a tool records when the guards accept it (tools without one: identity, end_call).
TOOL_OUTCOME = {
    "record_payment_promise": "promise_to_pay",
    "record_payment_plan": "promise_to_pay",
    "request_validation_notice": "validation_notice_requested",
    "report_dispute": "disputed",
    "report_wrong_party": "wrong_party",
    "request_no_further_calls": "opted_out",
}
# The fixed line (prompts/lines.md) the system speaks once a tool is accepted.
TOOL_CONFIRMATION = {
    "record_payment_promise": "read_back",
    "record_payment_plan": "plan_read_back",
    "request_validation_notice": "validation_notice_closing",
    "schedule_callback": "callback_confirm",
    "report_dispute": "dispute_closing",
    "report_wrong_party": "wrong_party_closing",
    "request_no_further_calls": "opt_out_closing",
}
# Tools that record the same thing: one refused and another accepted afterwards (a promise refused
# with a counter-offer, then the plan) is a negotiation that worked, not a refusal that leaked.
SAME_RECORD = {"record_payment_promise": "promise", "record_payment_plan": "promise"}

# What each persona's dialogue must end in, on every stage, with the default negotiation rules
# and the bench's balance (simulators/personas/*.yaml; a row whose outcome differs is flagged).
EXPECTED_OUTCOME = {
    "already_paid": "disputed",
    "busy": "no_answer",
    "callback_later": "callback_scheduled",
    "cant_talk": "callback_scheduled",
    "cooperative": "promise_to_pay",
    "cougher": "promise_to_pay",
    "disputes": "disputed",
    "fax": "machine",
    "haggler": "promise_to_pay",
    "hardship": "promise_to_pay",
    "hardship_no_plan": "callback_scheduled",
    "hostile": "callback_scheduled",
    "injector": "callback_scheduled",
    "interrupter": "promise_to_pay",
    "mailbox_full": "machine",
    "negotiator": "promise_to_pay",
    "no_answer": "no_answer",
    "plan_two_counters": "promise_to_pay",
    "questioner": "promise_to_pay",
    "scam_check": "promise_to_pay",
    "silent": "no_response",
    "sounds_like_machine": "promise_to_pay",
    "stop_calling": "opted_out",
    "unreachable": "failed",
    "voicemail": "voicemail_left",
    "written_request": "validation_notice_requested",
    "wrong_dob": "unverified",
    "wrong_person": "wrong_party",
}
# Personas whose outcome is right only with a plan of at least this many installments, and those
# whose call must keep a hardship note.
EXPECTED_MIN_INSTALLMENTS = {"hardship": 2, "plan_two_counters": 2}
EXPECTED_HARDSHIP_NOTE = frozenset({"hardship", "hardship_no_plan"})


OUTCOME_COLORS = {
    "promise_to_pay": "#7fc97f",
    "callback_scheduled": "#fdc086",
    "disputed": "#beaed4",
    "opted_out": "#f0027f",
    "wrong_party": "#bf5b17",
    "refused": "#e41a1c",
    "no_answer": "#dddddd",
    "failed": "#666666",
    "machine": "#a6cee3",
    "voicemail_left": "#1f78b4",
    "no_response": "#eeeeaa",
    "unverified": "#cab2d6",
    "hung_up": "#ffff99",
    "validation_notice_requested": "#386cb0",
}


@dataclass(frozen=True)
class Texts:
    """What the report looks for in a transcript: the disclosure, word for word, the balance as
    the agent says it, and per tool the words its confirmation line opens with."""

    disclosure: str
    balance_spoken: str
    confirmations: dict[str, str]


def product_texts(balance_minor: int = BALANCE_MINOR, currency: str = CURRENCY) -> Texts:
    """The texts from the product's own prompt set (prompts/lines.md)."""
    from services.voice_orchestrator.conversation import load_prompt_set, spoken_amount

    templates = load_prompt_set().lines.templates
    return Texts(
        disclosure=templates["disclosure"],
        balance_spoken=spoken_amount(balance_minor, currency),
        confirmations={
            tool: templates[line].split("{")[0].strip()
            for tool, line in TOOL_CONFIRMATION.items()
            if line in templates  # an older prompt set may not have the plan's lines
        },
    )


# --- the pure part: call view + events -> one row; rows -> summaries ----------------------------


def _at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9']+", text.lower().replace("\u2019", "'")))


def _contains(heard: str, line: str) -> bool:
    want = _words(line)
    return bool(want) and f" {want} " in f" {_words(heard)} "


def disclosure_verdict(
    call: dict[str, Any], events: list[dict[str, Any]], texts: Texts
) -> tuple[str, bool | None]:
    """(verdict, ok). With a `verified` step: ok (`after_verification`) when a `disclosure_spoken`
    step follows it, an agent turn holds the disclosure word for word, and no agent turn before
    that one names the balance. Without one: ok (`withheld`) when no disclosure step, no
    disclosure and no balance was said. No transcript: (`no_conversation`, None)."""
    agent = [t["text"] for t in call.get("transcript") or [] if t["speaker"] == "agent"]
    if not call.get("transcript"):
        return "no_conversation", None
    steps = [e["step"] for e in events]
    balance = texts.balance_spoken

    def says_balance(text: str) -> bool:
        return _contains(text, balance)

    if "verified" not in steps:
        said = "disclosure_spoken" in steps or any(
            _contains(t, texts.disclosure) or says_balance(t) for t in agent
        )
        return ("said_unverified", False) if said else ("withheld", True)
    if "disclosure_spoken" not in steps:
        return "missing", False
    if steps.index("disclosure_spoken") < steps.index("verified"):
        return "before_verification", False
    first = next((i for i, t in enumerate(agent) if _contains(t, texts.disclosure)), None)
    if first is None:
        return "missing", False
    if any(says_balance(t) for t in agent[:first]):
        return "balance_before_disclosure", False
    return "after_verification", True


def refusal_verdict(
    call: dict[str, Any], events: list[dict[str, Any]], texts: Texts
) -> tuple[list[dict[str, str | None]], bool | None]:
    """The rejected tool calls (tool, reason) and whether they came out right: each has a reason,
    and a tool refused and never accepted afterwards left no trace: not the call's outcome (nor
    its promise), and no agent turn after the refusal opens its confirmation line."""
    tools = [e for e in events if e["step"] == "tool_call"]
    rejected = [e for e in tools if e["detail"].get("tool_result") == "rejected"]
    out = [{"tool": e["detail"].get("tool"), "reason": e["reason"]} for e in rejected]
    if not rejected:
        return out, None
    ok = all(e["reason"] for e in rejected)
    turns = call.get("transcript") or []
    for e in rejected:
        tool = e["detail"].get("tool")
        later = tools[tools.index(e) + 1 :]
        same = SAME_RECORD.get(str(tool), tool)
        if any(
            SAME_RECORD.get(str(x["detail"].get("tool")), x["detail"].get("tool")) == same
            and x["detail"].get("tool_result") == "accepted"
            for x in later
        ):
            continue  # refused, then accepted (e.g. a corrected date): judged by what follows
        if tool in TOOL_OUTCOME and call.get("outcome") == TOOL_OUTCOME[tool]:
            ok = False
        if same == "promise" and call.get("payment_promise"):
            ok = False
        confirm = texts.confirmations.get(str(tool))
        if confirm and any(
            t["speaker"] == "agent"
            and _at(t["started_at"]) >= _at(e["at"])
            and _contains(t["text"], confirm)
            for t in turns
        ):
            ok = False
    return out, ok


def report_row(
    persona: str,
    stage: str,
    balance_minor: int,
    call: dict[str, Any],
    events: list[dict[str, Any]],
    texts: Texts,
) -> dict[str, Any]:
    """One persona on one stage, from the call's view and its step events."""
    promise = call.get("payment_promise")
    plan = call.get("payment_plan")
    if plan and plan.get("installments"):
        installments = len(plan["installments"])
        promised = int(plan["total"]["amount_minor"])
    else:  # a view from before payment plans: the single promise
        installments = 1 if promise else 0
        promised = int(promise["amount"]["amount_minor"]) if promise else 0
    expected = EXPECTED_OUTCOME.get(persona)
    outcome_ok = None if expected is None else call.get("outcome") == expected
    if outcome_ok and installments < EXPECTED_MIN_INSTALLMENTS.get(persona, 0):
        outcome_ok = False
    if outcome_ok and persona in EXPECTED_HARDSHIP_NOTE and not call.get("hardship_note"):
        outcome_ok = False
    disclosure, disclosure_ok = disclosure_verdict(call, events, texts)
    refusals, refusals_ok = refusal_verdict(call, events, texts)
    cost = call.get("cost") or {}
    return {
        "persona": persona,
        "stage": stage,
        "call_id": call.get("id"),
        "status": call.get("status"),
        "outcome": call.get("outcome"),
        "expected_outcome": expected,
        "outcome_ok": outcome_ok,
        "verification": call.get("verification"),
        "prompt_version": call.get("prompt_version"),
        "prompt_variant": call.get("prompt_variant"),
        "balance_minor": balance_minor,
        "promised_minor": promised,
        "promised_share_bp": round(10_000 * promised / balance_minor) if balance_minor else 0,
        "installments": installments,  # the plan's (each one a promise row); 1: one promise
        "settlement": bool(plan and plan.get("settlement")),
        "promise_due_date": promise["due_date"] if promise else None,
        "last_due_date": plan["installments"][-1]["due_date"] if plan else None,
        "hardship_note": bool(call.get("hardship_note")),
        "turns": len(call.get("transcript") or []),
        "duration_seconds": call.get("duration_seconds"),
        "cost_micro_usd": cost.get("total_micro_usd"),
        "disclosure": disclosure,
        "disclosure_ok": disclosure_ok,
        "refusals": refusals,
        "refusals_ok": refusals_ok,
    }


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 1) if values else None


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Promise rate (of all calls, and of verified ones), promised share (mean over promises;
    and all promised over all balances), mean cost, duration and turns, outcome counts, and the
    rows whose disclosure or refusals did not come out right."""
    promises = [r for r in rows if r["installments"]]
    verified = [r for r in rows if r["verification"] not in (None, "none")]
    balance = sum(r["balance_minor"] for r in rows)
    outcomes: dict[str, int] = {}
    for r in rows:
        outcomes[str(r["outcome"])] = outcomes.get(str(r["outcome"]), 0) + 1
    costs = [float(r["cost_micro_usd"]) for r in rows if r["cost_micro_usd"] is not None]
    answered = [r for r in rows if r["turns"]]
    return {
        "calls": len(rows),
        "verified": len(verified),
        "promises": len(promises),
        "promise_rate": round(len(promises) / len(rows), 3) if rows else None,
        "promise_rate_verified": round(len(promises) / len(verified), 3) if verified else None,
        "mean_promised_share_bp": _mean([r["promised_share_bp"] for r in promises]),
        "promised_share_of_balance_bp": (
            round(10_000 * sum(r["promised_minor"] for r in rows) / balance) if balance else None
        ),
        "installments": sum(r["installments"] for r in rows),
        "mean_cost_micro_usd": _mean(costs),
        "total_cost_micro_usd": int(sum(costs)),
        "mean_duration_seconds": _mean(
            [float(r["duration_seconds"]) for r in answered if r["duration_seconds"] is not None]
        ),
        "mean_turns": _mean([float(r["turns"]) for r in answered]),
        "outcomes": dict(sorted(outcomes.items())),
        "outcome_wrong": [f"{r['persona']}/{r['stage']}" for r in rows if r["outcome_ok"] is False],
        "disclosure_wrong": [
            f"{r['persona']}/{r['stage']}" for r in rows if r["disclosure_ok"] is False
        ],
        "refusals": sum(len(r["refusals"]) for r in rows),
        "refusals_wrong": [
            f"{r['persona']}/{r['stage']}" for r in rows if r["refusals_ok"] is False
        ],
    }


def summaries(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Overall, per stage, and per prompt version (which names the policy and the stage's
    variant with their versions, e.g. `policy@2026-12-03.2+early/default@2026-12-03.1`)."""
    prompts: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["prompt_version"] is not None:
            prompts.setdefault(str(r["prompt_version"]), []).append(r)
    stages = sorted({r["stage"] for r in rows}, key=lambda s: STAGES.index(s) if s in STAGES else 9)
    return {
        "all": summary(rows),
        "by_stage": {s: summary([r for r in rows if r["stage"] == s]) for s in stages},
        "by_prompt": {k: summary(v) for k, v in sorted(prompts.items())},
    }


# --- the shell: place the calls, print, write, draw ----------------------------------------------


def _money(micro: float | None) -> str:
    return "-" if micro is None else f"${micro / 1e6:.4f}"


def print_report(rows: list[dict[str, Any]], sums: dict[str, Any]) -> None:
    head = (
        f"{'persona':<20}{'stage':<16}{'outcome':<19}{'share':>6}{'inst':>5}{'turns':>6}"
        f"{'secs':>6}{'cost':>9}  {'variant':<12}{'disclosure':<26}refused tool calls (reason)"
    )
    print(f"\n{head}\n{'-' * len(head)}")
    for r in rows:
        refused = ", ".join(f"{x['tool']} ({x['reason']})" for x in r["refusals"]) or "-"
        if r["refusals_ok"] is False:
            refused = "WRONG " + refused
        disclosure = r["disclosure"] + ("" if r["disclosure_ok"] is not False else " WRONG")
        outcome = str(r["outcome"]) + ("" if r["outcome_ok"] is not False else " WRONG")
        print(
            f"{r['persona']:<20}{r['stage']:<16}{outcome:<19}"
            f"{r['promised_share_bp'] / 100:>5.0f}%{r['installments']:>5}{r['turns']:>6}"
            f"{r['duration_seconds'] if r['duration_seconds'] is not None else '-':>6}"
            f"{_money(r['cost_micro_usd']):>9}  {r['prompt_variant']!s:<12}{disclosure:<26}"
            f"{refused}"
        )
    print("\nsummary")
    groups = {"all": sums["all"], **{f"stage {k}": v for k, v in sums["by_stage"].items()}}
    groups |= {f"prompt {k}": v for k, v in sums["by_prompt"].items()}
    for name, s in groups.items():
        share = s["mean_promised_share_bp"]
        print(
            f"  {name}\n      calls {s['calls']:>3}  promise rate {s['promise_rate']:.0%}"
            f" ({s['promise_rate_verified'] or 0:.0%} of verified)  mean share "
            f"{'-' if share is None else f'{share / 100:.1f}%'}  mean cost "
            f"{_money(s['mean_cost_micro_usd'])}  outcome wrong {len(s['outcome_wrong'])}"
            f"  disclosure wrong {len(s['disclosure_wrong'])}"
            f"  refusals {s['refusals']} (wrong {len(s['refusals_wrong'])})"
        )


def chart(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    personas = sorted({r["persona"] for r in rows})
    stages = [s for s in STAGES if any(r["stage"] == s for r in rows)]
    outcomes = sorted({str(r["outcome"]) for r in rows})
    cell = {(r["persona"], r["stage"]): r for r in rows}
    grid = [[outcomes.index(str(cell[(p, s)]["outcome"])) if (p, s) in cell else -1
             for s in stages] for p in personas]  # fmt: skip
    others = [plt.get_cmap("tab20")(i) for i in range(20)]
    cmap = ListedColormap(
        [OUTCOME_COLORS.get(o, others[i % len(others)]) for i, o in enumerate(outcomes)]
    )
    height = max(4.0, 0.38 * len(personas) + 1.5)
    fig, (left, right) = plt.subplots(1, 2, figsize=(15, height), width_ratios=[1.1, 1])
    masked = [[v if v >= 0 else float("nan") for v in row] for row in grid]
    left.imshow(masked, cmap=cmap, vmin=-0.5, vmax=len(outcomes) - 0.5, aspect="auto")
    for i, p in enumerate(personas):
        for j, s in enumerate(stages):
            r = cell.get((p, s))
            if r is None:
                continue
            label = str(r["outcome"])
            if r["installments"]:
                label += f" {r['promised_share_bp'] / 100:.0f}%"
            if r["installments"] > 1:
                label += f" x{r['installments']}"
            if False in (r["disclosure_ok"], r["refusals_ok"], r["outcome_ok"]):
                label += " (!)"
            left.text(j, i, label, ha="center", va="center", fontsize=8)
    left.set_xticks(range(len(stages)), stages)
    left.set_yticks(range(len(personas)), personas)
    left.set_title(
        "outcome per persona and stage (share promised, xN installments; "
        "(!) = outcome/disclosure/refusal wrong)"
    )
    width = 0.8 / max(1, len(stages))
    for j, s in enumerate(stages):
        shares = [
            cell[(p, s)]["promised_share_bp"] / 100 if (p, s) in cell else 0 for p in personas
        ]
        offsets = [i + (j - (len(stages) - 1) / 2) * width for i in range(len(personas))]
        right.barh(offsets, shares, height=width, label=s)
    right.set_yticks(range(len(personas)), personas)
    right.invert_yaxis()
    right.set_xlim(0, 100)
    right.set_xlabel("promised share of the balance (%)")
    right.set_title("promised share per persona and stage")
    right.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    from simulators.personas import load_personas

    known = load_personas()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--personas", default=",".join(sorted(known)), help="comma-separated")
    ap.add_argument("--stages", default=",".join(STAGES), help="comma-separated")
    ap.add_argument(
        "--real-vendors",
        action="store_true",
        help="the real model (OPENAI_API_KEY, optional OPENAI_BASE_URL from env); phone, STT and "
        "TTS stay simulated so the personas can play; writes conversation-real.*; never in CI",
    )
    ap.add_argument("--timeout", type=float, default=330.0, help="seconds per stage's calls")
    args = ap.parse_args()
    personas = [p for p in args.personas.split(",") if p]
    stages = [s for s in args.stages.split(",") if s]
    if unknown := [p for p in personas if p not in known] + [s for s in stages if s not in STAGES]:
        ap.error(f"unknown persona or stage: {', '.join(unknown)}")
    facts = {name: dict(p.facts) for name, p in known.items() if p.facts}
    texts = product_texts()
    name = "conversation-real" if args.real_vendors else "conversation"
    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    out = Path(tempfile.mkdtemp(prefix="bench-conversation-"))
    with BenchRun(out, ["--speech", "tone"], real_llm=args.real_vendors) as bench:
        for k, stage in enumerate(stages):
            print(f"\n### stage {stage}: {len(personas)} calls at once", flush=True)
            results = run(
                bench.calls(
                    personas,
                    timeout_s=args.timeout,
                    offset=100 * k,
                    stage=stage,
                    amount_minor=BALANCE_MINOR,
                    facts=facts,
                    events=True,
                )
            )
            rows += [
                report_row(r.persona, stage, BALANCE_MINOR, r.call, r.events, texts)
                for r in results
            ]
    rows.sort(key=lambda r: (r["persona"], STAGES.index(r["stage"])))
    sums = summaries(rows)
    wall = round(time.monotonic() - started, 1)
    model = "GPT-5-mini (real)" if args.real_vendors else "simulated model"
    report = {
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "model": model,
        "balance": {"amount_minor": BALANCE_MINOR, "currency": CURRENCY},
        "stages": stages,
        "personas": personas,
        "wall_seconds": wall,
        "rows": rows,
        "summary": sums,
    }
    print_report(rows, sums)
    path = write_results(name, report)
    png = RESULTS / f"{name}.png"
    chart(rows, png, f"conversation report: {len(rows)} calls, {model}, {report['generated_at']}")
    print(f"\nwrote {path} and {png} ({wall}s)")


if __name__ == "__main__":
    main()
