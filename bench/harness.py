"""Run simulated calls through the whole local deployment and collect per-turn figures.

Two views of every turn:
- the phone's (the Twilio simulator's recording): the debtor's last audio frame to the agent's
  first audio frame, i.e. voice-to-voice as heard;
- the orchestrator's own stamps (stored with the call): STT final, LLM first token, TTS first
  byte, first audio out, and its own overhead (voice-to-voice minus time spent waiting on a
  vendor).
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from scripts.calls import (
    assign_persona,
    create_debtor,
    fictional_number,
    trigger_call,
    wait_terminal,
)
from scripts.deployment import API_KEY, LocalDeployment

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"

# Vendor latencies for the "realistic" profile and where each figure comes from.
REALISTIC = {
    # Deepgram: endpointing (300 ms of silence, our setting) is part of every turn; on top of
    # it, ~100 ms to deliver the final (Twilio's budget: 350 ms for the first transcript).
    "--deepgram-latency-ms": "100",
    # GPT-5-mini, reasoning_effort=minimal: time to first token ~600 ms (ARCHITECTURE.md reports
    # a mean near 0.8 s; Twilio's budget allots 375 ms), ~90 tokens/s.
    "--openai-ttft-ms": "600",
    "--openai-tokens-per-s": "90",
    # ElevenLabs eleven_flash_v2_5: ~75 ms model time plus network: 150 ms to first byte.
    "--elevenlabs-ttfb-ms": "150",
}
ZERO = {
    "--deepgram-latency-ms": "0",
    "--openai-ttft-ms": "0",
    "--openai-tokens-per-s": "100000",
    "--elevenlabs-ttfb-ms": "0",
}
# Realistic medians with the spread production shows, seeded so that a run can be repeated.
JITTERY = {
    # Deepgram final: median 100 ms after endpointing, log-normal sigma 0.35 (p95 ~180 ms).
    "--deepgram-latency-ms": "100",
    "--deepgram-latency-sigma": "0.35",
    # GPT-5-mini time to first token: log-normal, median 650 ms, p95 1,100 ms
    # (sigma = ln(1100 / 650) / 1.645 = 0.32).
    "--openai-ttft-ms": "650",
    "--openai-ttft-sigma": "0.32",
    "--openai-tokens-per-s": "90",
    # ElevenLabs first byte: median 150 ms, sigma 0.3 (p95 ~245 ms).
    "--elevenlabs-ttfb-ms": "150",
    "--elevenlabs-ttfb-sigma": "0.3",
    # Twilio media leg: 40 ms each way between the phone's media edge and us.
    "--twilio-media-latency-ms": "40",
    "--latency-seed": "7",
}
PROFILES = {"realistic": REALISTIC, "zero": ZERO, "jittery": JITTERY}


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    xs = sorted(values)

    def p(q: float) -> float:
        k = (len(xs) - 1) * q / 100
        lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
        return round(xs[lo] + (xs[hi] - xs[lo]) * (k - lo), 1)

    return {"n": len(xs), "p50": p(50), "p95": p(95), "p99": p(99), "max": round(xs[-1], 1)}


@dataclass
class CallResult:
    persona: str
    call: dict[str, Any]
    sim: dict[str, Any]
    # The orchestrator's per-turn records as stored (extra keys included: turn_kind, ...); the
    # API's view keeps only the schema's keys. Falls back to those when the DB is unreachable.
    records: list[dict[str, Any]] = field(default_factory=list)
    # GET /v1/calls/{id}/events, oldest first (only when `calls(..., events=True)`).
    events: list[dict[str, Any]] = field(default_factory=list)

    def turn_records(self) -> list[dict[str, Any]]:
        return self.records or list(self.call.get("latency", []))

    def phone_turns(self) -> list[dict[str, Any]]:
        """Per debtor line: ms from its last audio to the next agent audio, as the phone heard."""
        streams = self.sim.get("streams") or []
        if not streams:
            return []
        stream = streams[-1]
        segments = sorted(s["start_ms"] for s in stream.get("agent_audio", []))
        out = []
        for line in stream.get("debtor_lines", []):
            end = line.get("end_ms")
            if end is None:
                continue
            nxt = next((s for s in segments if s >= end), None)
            if nxt is not None:
                out.append({"line": line["index"], "voice_to_voice_ms": nxt - end})
        return out


@dataclass
class BenchRun:
    out: Path
    sim_args: list[str] = field(default_factory=list)
    service_env: dict[str, str] = field(default_factory=dict)
    real_llm: bool = False  # the real OpenAI model, everything else simulated
    deployment: LocalDeployment = field(init=False)

    def __post_init__(self) -> None:
        self.deployment = LocalDeployment(
            self.out, sim_args=self.sim_args, service_env=self.service_env, real_llm=self.real_llm
        )

    def __enter__(self) -> BenchRun:
        # SIGTERM stops what we started, like Ctrl-C (no orphaned stack or services).
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            self.deployment.start(lambda msg: print(msg, flush=True))
        except BaseException:
            self.deployment.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.deployment.stop()

    async def calls(
        self,
        personas: list[str],
        timeout_s: float = 240.0,
        offset: int = 0,
        ramp_s: float = 0.0,
        *,
        stage: str = "early",
        amount_minor: int = 45_000,
        facts: dict[str, dict[str, str]] | None = None,
        events: bool = False,
    ) -> list[CallResult]:
        """Place one call per persona and wait for all of them. With `ramp_s` the calls are
        triggered evenly over that many seconds instead of all at once. Each debtor is created
        at `stage` with a balance of `amount_minor` and its persona's verification `facts`
        (persona -> facts; none by default); `events` also reads each call's step events."""
        headers = {"Authorization": f"Bearer {API_KEY}"}
        sim_url = self.deployment.sim_url
        assert sim_url is not None
        async with (
            httpx.AsyncClient(base_url=self.deployment.api_url, headers=headers, timeout=30) as api,
            httpx.AsyncClient(base_url=sim_url, timeout=30) as sim,
        ):
            ids: list[tuple[str, str]] = []
            for i, persona in enumerate(personas):
                phone = fictional_number(offset + i)
                await assign_persona(sim, phone, persona)
            # Numbers repeat after 1,000 calls: count only the simulator's calls placed now.
            earlier = {c["sid"] for c in (await sim.get("/_sim/calls")).json()}
            started = time.monotonic()
            for i, persona in enumerate(personas):
                delay = started + ramp_s * i / len(personas) - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                debtor = await create_debtor(
                    api,
                    fictional_number(offset + i),
                    stage=stage,
                    amount_minor=amount_minor,
                    facts=(facts or {}).get(persona),
                )
                ids.append(((await trigger_call(api, debtor["id"]))["id"], persona))
            # Watch the phone side (one cheap request for all calls) rather than polling every
            # call through the API: at 100+ calls that polling loaded the machine under test.
            numbers = {fictional_number(offset + i) for i in range(len(personas))}
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                sim_calls = [
                    c
                    for c in (await sim.get("/_sim/calls")).json()
                    if c["to"] in numbers and c["sid"] not in earlier
                ]
                if len(sim_calls) == len(numbers) and all(c["finished"] for c in sim_calls):
                    break
                await asyncio.sleep(1.0)
            views = await wait_terminal(api, [c for c, _ in ids], 60, interval_s=1.0)
            print(f"  {len(ids)} calls done in {time.monotonic() - started:.1f}s", flush=True)
            stored = await self.stored_latency([c for c, _ in ids])
            results = []
            for cid, persona in ids:
                call = views[cid]
                sid = call.get("twilio_call_sid")
                snap = (await sim.get(f"/_sim/calls/{sid}?wait=5")).json() if sid else {}
                steps = await call_events(api, cid) if events else []
                results.append(CallResult(persona, call, snap, stored.get(cid, []), steps))
            return results

    async def stored_latency(self, call_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """`calls.latency` straight from the database: every key the orchestrator stored."""
        try:
            import asyncpg

            url = self.deployment.stack.env()["DATABASE_URL"].replace("+asyncpg", "")
            conn = await asyncpg.connect(url)
            try:
                rows = await conn.fetch(
                    "SELECT id::text AS id, latency::text AS latency FROM calls "
                    "WHERE id::text = ANY($1::text[])",
                    call_ids,
                )
            finally:
                await conn.close()
        except Exception as exc:  # the API view still gives the schema keys
            print(f"  (stored latency records unavailable: {exc!r})", flush=True)
            return {}
        return {r["id"]: json.loads(r["latency"] or "[]") for r in rows}


async def call_events(api: httpx.AsyncClient, call_id: str) -> list[dict[str, Any]]:
    """Every step event of the call (`GET /v1/calls/{id}/events`), page by page."""
    events: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100}
    while True:
        resp = await api.get(f"/v1/calls/{call_id}/events", params=params)
        resp.raise_for_status()
        body = resp.json()
        events.extend(body["data"])
        if body["next_cursor"] is None:
            return events
        params["cursor"] = body["next_cursor"]


def turn_figures(results: list[CallResult]) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {
        "phone_voice_to_voice_ms": [],
        "voice_to_voice_ms": [],
        "stt_final_ms": [],
        "llm_first_token_ms": [],
        "tts_first_byte_ms": [],
        "orchestrator_overhead_ms": [],
        "barge_in_to_clear_ms": [],
    }
    for r in results:
        figures["phone_voice_to_voice_ms"] += [t["voice_to_voice_ms"] for t in r.phone_turns()]
        for t in r.turn_records():
            for key in figures:
                if key != "phone_voice_to_voice_ms" and t.get(key) is not None:
                    figures[key].append(float(t[key]))
    return figures


def write_results(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return path


def print_table(title: str, stats: dict[str, dict[str, Any]]) -> None:
    print(f"\n{title}")
    print(f"  {'figure':<28}{'n':>5}{'p50':>9}{'p95':>9}{'p99':>9}{'max':>9}")
    for key, s in stats.items():
        if s["n"]:
            print(
                f"  {key:<28}{s['n']:>5}{s['p50']:>9}{s['p95']:>9}{s['p99']:>9}{s['max']:>9}",
                flush=True,
            )


def run(coro: Any) -> Any:
    return asyncio.run(coro)


KINDS = ("greeting", "fixed_line", "tool_turn", "plain_turn")
BREAKDOWN = (
    "end_of_speech_wait_ms",
    "llm_request_after_speech_end_ms",
    "stt_final_ms",
    "llm_first_token_ms",
    "llm_first_sentence_ms",
    "tts_first_byte_ms",
    "voice_to_voice_ms",
)


def turn_kind(rec: dict[str, Any]) -> str:
    """The record's `turn_kind`; for records of an orchestrator that does not store it yet:
    greeting, or `unclassified`."""
    kind = rec.get("turn_kind")
    if isinstance(kind, str):
        return kind
    if rec.get("kind") == "greeting" or (
        "kind" not in rec
        and rec.get("turn_index") in (0, 1)
        and rec.get("debtor_speech_end_at") is None
    ):
        return "greeting"
    return "unclassified"


def paired_turns(result: CallResult) -> list[tuple[dict[str, Any], int | None]]:
    """Each orchestrator record with the phone's voice-to-voice for the same turn (or None).

    The phone's turns are debtor lines in order; line 0 ("Hello?") is the greeting's, and the
    other lines are matched in order to the reply records that have a debtor speech end.
    """
    phone = [t["voice_to_voice_ms"] for t in result.phone_turns()]
    recs = result.turn_records()
    out: list[tuple[dict[str, Any], int | None]] = []
    replies = iter(phone[1:])
    for rec in recs:
        if turn_kind(rec) == "greeting":
            out.append((rec, phone[0] if phone else None))
        elif rec.get("voice_to_voice_ms") is not None:
            out.append((rec, next(replies, None)))
        else:
            out.append((rec, None))
    return out


def kind_report(results: list[CallResult]) -> dict[str, Any]:
    """Per turn kind: phone and orchestrator voice-to-voice, the breakdown, model requests
    before the first audio, early-generation outcomes."""
    by_kind: dict[str, dict[str, list[float]]] = {}
    replies_phone: list[float] = []
    replies_orch: list[float] = []
    requests: dict[str, int] = {}
    asked_again: dict[str, int] = {}  # why a turn asked the model again (after a tool call)
    early = {"starts": 0, "hits": 0, "discards": 0}
    premade = 0  # replies whose first sound was audio made ahead
    each: dict[str, dict[int, list[float]]] = {}
    for r in results:
        for rec, phone in paired_turns(r):
            kind = turn_kind(rec)
            f = by_kind.setdefault(kind, {"phone_voice_to_voice_ms": []})
            if phone is not None:
                f["phone_voice_to_voice_ms"].append(float(phone))
            for key in BREAKDOWN:
                if rec.get(key) is not None:
                    f.setdefault(key, []).append(float(rec[key]))
            for i, ms in enumerate(rec.get("llm_first_token_ms_each") or []):
                if ms is not None:
                    each.setdefault(kind, {}).setdefault(i, []).append(float(ms))
            if kind == "greeting":
                continue
            if phone is not None:
                replies_phone.append(float(phone))
            if rec.get("voice_to_voice_ms") is not None:
                replies_orch.append(float(rec["voice_to_voice_ms"]))
            if "llm_requests_before_audio" in rec:
                n = str(rec["llm_requests_before_audio"])
                requests[n] = requests.get(n, 0) + 1
            for why in rec.get("asked_again") or ():
                asked_again[why] = asked_again.get(why, 0) + 1
            premade += bool(rec.get("premade_audio"))
            if rec.get("early") in ("hit", "discard"):
                early["starts"] += 1
                early["hits" if rec["early"] == "hit" else "discards"] += 1
    kinds_out: dict[str, Any] = {}
    for kind, f in by_kind.items():
        kinds_out[kind] = {key: percentiles(v) for key, v in f.items()}
        kinds_out[kind]["turns"] = len(f.get("phone_voice_to_voice_ms", [])) or max(
            (len(v) for v in f.values()), default=0
        )
        kinds_out[kind]["llm_first_token_ms_each"] = [
            percentiles(v) for _, v in sorted(each.get(kind, {}).items())
        ]
    return {
        "replies": {
            "phone_voice_to_voice_ms": percentiles(replies_phone),
            "voice_to_voice_ms": percentiles(replies_orch),
        },
        "by_kind": kinds_out,
        "llm_requests_before_audio": dict(sorted(requests.items())),
        "asked_again": dict(sorted(asked_again.items())),
        "early_generation": early,
        "premade_first_audio": premade,
        "raw_by_kind": {kind: f.get("phone_voice_to_voice_ms", []) for kind, f in by_kind.items()},
    }
