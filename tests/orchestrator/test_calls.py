"""Whole calls through the orchestrator, against the simulators over real sockets.

Every persona (plus the vendor-failure runs) is dialled at once by one session fixture, which
keeps the suite short; the tests then check each run: outcome, transcript, promise/callback,
recording, `call.completed`, timings, and what the simulated phone actually heard (overlaps of
agent audio over the debtor, `clear`s, marks).

Vendor failures come from the vendors' side: each fault run posts its faults to the simulators
(`POST /_sim/faults`) scoped to its own call (Deepgram: the call's number; OpenAI: our
`safety_identifier`, the call id; ElevenLabs: the debtor's name, which the greeting says), and
the simulators' records show what the orchestrator did about them.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import uuid
import wave
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from sqlalchemy import func, select, update

from generated.call_completed_data import CallCompletedData
from generated.turn_latency import TurnLatency
from services.common.blobstore import GcsBlobStore
from services.common.call_events import event_id
from services.common.models import Call, CallTurn, OutboxMessage, PaymentPromise
from services.common.models import Callback as CallbackRow
from services.common.models.call_steps import CallStepEvent
from services.voice_orchestrator.core import DelinquencyStage, default_prompt_set, prompt_cache_key
from services.voice_orchestrator.finalize import recording_key, transcript_key
from services.voice_orchestrator.media.mulaw import FRAME_MS
from services.voice_orchestrator.turns import is_backchannel
from tests.orchestrator.conftest import (
    BALANCE_MINOR,
    MS_PER_CHAR,
    OPENAI_TIMEOUT_S,
    TUNING,
    TZ,
    Orch,
    today_in_tz,
)


@dataclass(frozen=True)
class Expect:
    persona: str
    status: str = "completed"
    outcome: str = "promise_to_pay"
    answered: bool = True
    fault: str | None = None  # a key of FAULTS
    stage: str = "early"
    prompt_variant: str | None = None  # dispatched with this variant, as the scheduler would


@dataclass(frozen=True)
class Scope:
    """What identifies one call at each vendor."""

    number: str  # Deepgram: the connection's tag is the CallSid, whose call dialled this number
    call_id: str  # OpenAI: our safety_identifier
    name: str  # ElevenLabs: the debtor's name, in the greeting's text


FAULTS: dict[str, Callable[[Scope], dict[str, Any]]] = {
    # Every request of the call answered 503: retried, then given up.
    "llm_down": lambda c: {"openai": {"status": 503, "count": None, "match": c.call_id}},
    "llm_429": lambda c: {
        "openai": {"status": 429, "count": 2, "retry_after_s": 1, "match": c.call_id}
    },
    "llm_500": lambda c: {"openai": {"status": 500, "count": 1, "match": c.call_id}},
    # Longer than our timeout (OPENAI_TIMEOUT_S).
    "llm_hang": lambda c: {"openai": {"hang_s": 30, "count": 1, "match": c.call_id}},
    # The role chunk and "Thank": cut before the reply's first clause ("Thank you,") is complete,
    # which goes to TTS the moment its comma arrives.
    "llm_drop": lambda c: {"openai": {"drop_mid_stream_after_chunks": 2, "match": c.call_id}},
    # Cooperative: "Hello?" (1), "Yes, speaking." (3), "Oh, right." (5): cut inside the line.
    "stt_drop": lambda c: {"deepgram": {"drop_after_words": 5, "number": c.number}},
    "stt_down": lambda c: {"deepgram": {"status": 503, "count": None, "number": c.number}},
    # Negotiator: the greeting (1), then the 2nd sentence of the next reply.
    "tts_drop": lambda c: {"elevenlabs": {"drop_after_texts": 3, "match": c.name, "delay_ms": 300}},
    "tts_down": lambda c: {"elevenlabs": {"drop_after_texts": 1, "match": c.name, "count": None}},
}


RUNS: dict[str, Expect] = {
    "cooperative": Expect("cooperative"),
    "negotiator": Expect("negotiator"),
    "questioner": Expect("questioner"),
    "interrupter": Expect("interrupter"),
    "cougher": Expect("cougher"),
    "callback_later": Expect("callback_later", outcome="callback_scheduled"),
    "disputes": Expect("disputes", outcome="disputed"),
    "stop_calling": Expect("stop_calling", outcome="opted_out"),
    "wrong_person": Expect("wrong_person", outcome="wrong_party"),
    "hostile": Expect("hostile", outcome="callback_scheduled"),
    "silent": Expect("silent", outcome="no_response"),
    "busy": Expect("busy", status="busy", outcome="no_answer", answered=False),
    "no_answer": Expect("no_answer", status="no_answer", outcome="no_answer", answered=False),
    "unreachable": Expect("unreachable", status="failed", outcome="failed", answered=False),
    # Vendor failures mid-call.
    "llm_down": Expect("cooperative", outcome="failed", fault="llm_down"),
    "llm_429": Expect("cooperative", fault="llm_429"),
    "llm_500": Expect("cooperative", fault="llm_500"),
    "llm_hang": Expect("cooperative", fault="llm_hang"),
    "llm_drop": Expect("cooperative", fault="llm_drop"),
    "tts_drop": Expect("negotiator", fault="tts_drop"),
    "stt_drop": Expect("cooperative", fault="stt_drop"),
    "stt_down": Expect("cooperative", outcome="failed", fault="stt_down"),
    "tts_down": Expect("cooperative", outcome="failed", fault="tts_down"),
    # A/B prompt variant: the late stage's plan_first text (test_the_dispatched_variant_...).
    "plan_first": Expect("cooperative", stage="late", prompt_variant="plan_first"),
    # Payment plans and objections (issue 20), on the stages' default terms.
    "hardship": Expect("hardship"),
    "hardship_no_plan": Expect("hardship_no_plan", outcome="callback_scheduled"),
    "already_paid": Expect("already_paid", outcome="disputed"),
    "written_request": Expect("written_request", outcome="validation_notice_requested"),
    "scam_check": Expect("scam_check"),
    "cant_talk": Expect("cant_talk", outcome="callback_scheduled"),
    "plan_two_counters": Expect("plan_two_counters", stage="late"),
}
LOOP_LAGS: list[float] = []
VENDOR_RECORDS: dict[str, Any] = {}


async def loop_lag_monitor(out: list[float]) -> None:
    """How late the event loop wakes a 10 ms sleep: every call shares this one loop."""
    loop = asyncio.get_running_loop()
    while True:
        t = loop.time()
        await asyncio.sleep(0.01)
        out.append(loop.time() - t - 0.01)


@dataclass
class Run:
    expect: Expect
    call: Call
    turns: list[CallTurn]
    promise: PaymentPromise | None  # the only one, or a plan's first installment
    promises: list[PaymentPromise]
    callback: CallbackRow | None
    events: list[OutboxMessage]
    sim: dict[str, Any]
    wav: bytes | None
    transcript: dict[str, Any] | None
    tts_contexts: list[dict[str, Any]]

    @property
    def stream(self) -> dict[str, Any]:
        streams = self.sim["streams"]
        assert streams, "no media stream"
        return dict(streams[-1])


async def _one(orch: Orch, store: GcsBlobStore, name: str, expect: Expect) -> Run:
    number = await orch.assign(expect.persona)
    debtor_name = f"Jane {name.title().replace('_', '')}"  # unique per run (ElevenLabs faults)
    call_id, data = await orch.new_call(number, stage=expect.stage, name=debtor_name)
    key = str(call_id)
    if expect.fault is not None:
        await orch.add_faults(FAULTS[expect.fault](Scope(number, key, debtor_name)))
    if expect.prompt_variant is not None:
        version = default_prompt_set().version(
            DelinquencyStage(expect.stage), expect.prompt_variant
        )
        async with orch.sessions() as s, s.begin():  # as the scheduler leaves it at dispatch
            await s.execute(
                update(Call)
                .where(Call.id == call_id)
                .values(prompt_variant=expect.prompt_variant, prompt_version=version)
            )
        data |= {"prompt_variant": expect.prompt_variant, "prompt_version": version}
    await orch.dispatch(data)
    call = await orch.wait_terminal(call_id, within=120)
    await asyncio.sleep(0.5)  # let the outbox relay and the simulator settle
    async with orch.sessions() as s:
        turns = list(
            (
                await s.scalars(
                    select(CallTurn).where(CallTurn.call_id == call_id).order_by(CallTurn.index)
                )
            ).all()
        )
        promises = list(
            (
                await s.scalars(
                    select(PaymentPromise)
                    .where(PaymentPromise.call_id == call_id)
                    .order_by(PaymentPromise.installment)
                )
            ).all()
        )
        promise = promises[0] if promises else None
        callback = await s.scalar(select(CallbackRow).where(CallbackRow.call_id == call_id))
        events = list(
            (
                await s.scalars(
                    select(OutboxMessage).where(
                        OutboxMessage.ce_type == "call.completed",
                        OutboxMessage.payload["call"]["id"].astext == key,
                    )
                )
            ).all()
        )
    assert call.twilio_call_sid, f"{name}: no CallSid stored"
    sim = await orch.sim_call(call.twilio_call_sid, wait=10)
    wav = transcript = None
    if expect.answered:
        wav = await store.get(recording_key(key))
        transcript = json.loads(await store.get(transcript_key(key)))
    return Run(expect, call, turns, promise, promises, callback, events, sim, wav, transcript, [])


@pytest.fixture(scope="package")
async def runs(orch: Orch) -> dict[str, Run]:
    store = GcsBlobStore(orch.settings)
    lags: list[float] = []
    monitor = asyncio.create_task(loop_lag_monitor(lags))
    try:
        results = await asyncio.gather(*(_one(orch, store, n, e) for n, e in RUNS.items()))
    finally:
        monitor.cancel()
    LOOP_LAGS.extend(lags)
    out = dict(zip(RUNS, results, strict=True))
    # What the vendors saw (per request / connection), and which faults fired.
    for what in ("openai", "deepgram", "elevenlabs", "faults"):
        VENDOR_RECORDS[what] = await orch.sim_records(what)
    # What ElevenLabs was asked to say, per context (to compare with what was heard).
    contexts = [c for conn in VENDOR_RECORDS["elevenlabs"] for c in conn.get("contexts", [])]
    for run in out.values():
        run.tts_contexts = contexts
    return out


ANSWERED = [n for n, e in RUNS.items() if e.answered]
# Runs where the conversation itself ran normally (no vendor outage from the start).
CONVERSED = [n for n in ANSWERED if RUNS[n].fault not in ("stt_down", "tts_down")]


# ---- every run ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(RUNS))
async def test_call_ends_with_the_right_status_and_outcome(runs: dict[str, Run], name: str) -> None:
    run = runs[name]
    assert (run.call.status, run.call.outcome) == (run.expect.status, run.expect.outcome), (
        run.call.failure_reason,
        [(t.speaker, t.text) for t in run.turns],
    )
    assert run.call.ended_at is not None
    # Exactly one call.completed, with the contract's payload and the deterministic ce-id.
    assert len(run.events) == 1
    event = run.events[0]
    assert event.ce_id == event_id(run.call.id)
    assert event.topic == "call-events"
    data = CallCompletedData.model_validate(event.payload)
    assert data.call.status.value == run.expect.status
    assert data.call.outcome is not None and data.call.outcome.value == run.expect.outcome
    assert len(data.call.transcript) == len(run.turns)


# The `ended` step's reason per run (docs/call-events.md); None for the others.
ENDED_REASONS: dict[str, set[str | None]] = {
    "busy": {"busy"},
    "no_answer": {"no_answer"},
    "unreachable": {"twilio_failed", "twilio_rejected"},
    "llm_down": {"llm_failure"},
    "stt_down": {"stt_failure"},
    "tts_down": {"tts_failure"},
}


@pytest.mark.parametrize("name", list(RUNS))
async def test_call_steps_are_stored(orch: Orch, runs: dict[str, Run], name: str) -> None:
    """The call's steps (call_step_events, docs/call-events.md): dialed once, one `ended` with
    the row's status and outcome and the reason its failure gives; an answered call was
    answered, its recording stored last; a conversation has its tool calls, each with its
    guard result (a refusal with its reason)."""
    run = runs[name]
    async with orch.sessions() as s:
        rows = list(
            (
                await s.scalars(
                    select(CallStepEvent)
                    .where(CallStepEvent.call_id == run.call.id)
                    .order_by(CallStepEvent.at, CallStepEvent.sequence)
                )
            ).all()
        )
    names = [r.step for r in rows]
    assert names[0] == "dialing" and names.count("dialing") == 1, names
    (ended,) = [r for r in rows if r.step == "ended"]
    assert (ended.detail["status"], ended.detail["outcome"]) == (
        run.call.status,
        run.call.outcome,
    )
    assert ended.reason in ENDED_REASONS.get(name, {None}), (ended.reason, ended.detail)
    if not run.expect.answered:
        return
    # The orchestrator's last step (the Client API's webhook_* steps may follow it).
    ours = [n for n in names if not n.startswith("webhook_")]
    assert "answered" in ours and ours[-1] == "recording_stored", names
    if name in CONVERSED and name not in ("silent", "llm_down"):  # those never get a move
        tools = [r for r in rows if r.step == "tool_call"]
        assert tools, names
        for r in tools:
            assert (r.detail["tool_result"] == "rejected") == (r.reason is not None), r.detail


@pytest.mark.parametrize("name", CONVERSED)
async def test_transcript_is_stored_in_order_and_matches_the_file(
    runs: dict[str, Run], name: str
) -> None:
    run = runs[name]
    turns = run.turns
    assert [t.index for t in turns] == list(range(len(turns)))
    agent = [t for t in turns if t.speaker == "agent"]
    assert agent, "the agent never spoke"
    # The agent identifies itself as an AI first (it waits for the callee's "Hello?").
    assert " AI" in agent[0].text
    for t in turns:
        assert t.started_at is not None and t.ended_at is not None
        assert t.ended_at >= t.started_at
        assert t.state in ("greeting", "verification", "negotiation", "commitment", "closing")
        assert not (t.speaker == "debtor" and t.interrupted)
    assert run.transcript is not None
    assert [(t["speaker"], t["text"]) for t in run.transcript["turns"]] == [
        (t.speaker, t.text) for t in turns
    ]
    # The debtor's lines were heard as spoken (Deepgram simulator words, punctuated).
    spoken = [ln["text"] for ln in run.stream["debtor_lines"]]
    heard = " ".join(t.text for t in turns if t.speaker == "debtor")
    for line in spoken:
        if is_backchannel(line):
            continue  # "Mm" while the agent talks is not a turn of its own
        if not any(ln.get("cut_off") for ln in run.stream["debtor_lines"]):
            assert line.rstrip("?.!").split()[-1].lower() in heard.lower()


@pytest.mark.parametrize("name", ANSWERED)
async def test_no_agent_audio_over_the_debtor_except_barge_in_reaction(
    runs: dict[str, Run], name: str
) -> None:
    stream = runs[name].stream
    assert stream["errors"] == []
    if RUNS[name].fault == "tts_down":
        assert stream["agent_audio"] == []
        return
    clears = stream["clears"]
    # Overlap is only the reaction window of a barge-in: debtor onset → our `clear`. The agent's
    # audio may stop before the clear (its turn ran out, or the pacer ducked on local VAD), so
    # the clear is due within the reaction budget from the onset, not before the overlap ends.
    budget = TUNING.barge_in_min_speech_ms + 200
    for start, end in stream["overlaps"]:
        assert end - start <= budget, stream["overlaps"]
        assert any(start <= c["at_ms"] <= start + budget + 40 for c in clears), (
            start,
            end,
            clears,
        )
    if name not in ("interrupter", "cougher"):
        assert stream["overlap_ms"] == 0, stream["overlaps"]


GAP_EDGE_MS = 400


@pytest.mark.parametrize("name", ANSWERED)
async def test_recording_is_stereo_and_time_aligned(runs: dict[str, Run], name: str) -> None:
    run = runs[name]
    assert run.call.recording_uri == f"gs://collections-calls/{recording_key(str(run.call.id))}"
    assert run.wav is not None
    with wave.open(io.BytesIO(run.wav)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 8000)
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    stream = run.stream

    def rms(ch: int, a_ms: float, b_ms: float) -> float:
        seg = pcm[int(a_ms * 8) : int(b_ms * 8), ch].astype(np.float64)
        return float(np.sqrt((seg**2).mean())) if len(seg) else 0.0

    # Debtor speech on the left where the phone spoke it (Twilio media timestamps).
    for line in stream["debtor_lines"]:
        a, b = line["start_ms"], line["end_ms"]
        if b - a < 200:
            continue
        assert rms(0, a + 60, b - 60) > 500, line
    # Agent audio on the right where the phone played it; silence where it did not.
    segments = stream["agent_audio"]
    if run.expect.fault == "tts_down":
        assert np.abs(pcm[:, 1]).max() == 0
        return
    assert segments
    # Our clock starts when we receive `start`, a few ms after the phone's: allow 120 ms.
    for seg in segments:
        a, b = seg["start_ms"], seg["end_ms"]
        if b - a < 400:
            continue
        assert rms(1, a + 120, b - 120) > 500, seg
    # Silence between them. Our playout clock and the phone simulator's playback (which skips
    # frames when a busy machine makes it fall behind) may differ by a few hundred ms at an edge;
    # a misplaced segment, or audio a `clear` did not erase, is seconds of speech in the gap.
    gaps = [(x["end_ms"], y["start_ms"]) for x, y in itertools.pairwise(segments)]
    for a, b in gaps:
        loud = [t for t in range(int(a), int(b) - 20, 20) if rms(1, t, t + 20) > 300]
        stray = [t for t in loud if t - a > GAP_EDGE_MS and b - (t + 20) > GAP_EDGE_MS]
        assert not stray, (a, b, stray)


@pytest.mark.parametrize("name", CONVERSED)
async def test_timings_are_recorded_per_agent_turn(runs: dict[str, Run], name: str) -> None:
    run = runs[name]
    latency = run.call.latency
    agent_idx = {t.index for t in run.turns if t.speaker == "agent"}
    assert latency and {r["turn_index"] for r in latency} <= agent_idx
    for rec in latency:
        TurnLatency.model_validate(rec)
        if rec["kind"] == "reply" and rec["voice_to_voice_ms"] is not None:
            assert rec["stt_final_ms"] is not None and rec["tts_first_byte_ms"] is not None
            # (A retried LLM request makes its turn slower: that is the point of those runs.)
            slowest = 4000 if run.expect.fault is None else 9000
            # A line made ahead skips the TTS round trip (the simulator's is ~150 ms).
            fastest = 100 if rec.get("premade_audio") else 300
            assert fastest < rec["voice_to_voice_ms"] < slowest, rec
            # What our own code adds, beyond waiting on vendors: a few ms.
            assert rec["own_overhead_ms"] < 60, rec
    greeting = latency[0]
    assert greeting["kind"] == "greeting" and greeting["voice_to_voice_ms"] is None


# ---- per persona ------------------------------------------------------------------------


async def test_promises_are_stored(runs: dict[str, Run]) -> None:
    today = today_in_tz()
    coop = runs["cooperative"].promise
    assert coop is not None
    assert (coop.amount_minor, coop.currency, coop.due_date) == (BALANCE_MINOR, "USD", today)
    inter = runs["interrupter"].promise
    assert inter is not None and inter.due_date == today + timedelta(days=1)
    nego = runs["negotiator"].promise
    assert nego is not None and nego.amount_minor == 15000 and nego.due_date > today
    for name in ("callback_later", "disputes", "stop_calling", "wrong_person", "silent"):
        assert runs[name].promise is None, name


def _said(run: Run, speaker: str) -> str:
    return " ".join(t.text for t in run.turns if t.speaker == speaker)


async def test_payment_plans_are_stored_one_promise_per_installment(
    orch: Orch, runs: dict[str, Run]
) -> None:
    """Hardship: the smallest plan inside the early terms, offered after report_hardship and
    accepted. Two counter-offers: the late plan the debtor took after two refusals. Each plan
    covers the balance in date order, its first payment inside the first-payment window."""
    today = today_in_tz()
    for name, stage in (("hardship", "early"), ("plan_two_counters", "late")):
        run = runs[name]
        plan = run.promises
        assert len(plan) >= 2, (name, [(t.speaker, t.text) for t in run.turns])
        assert [p.installment for p in plan] == list(range(1, len(plan) + 1))
        assert {p.installments for p in plan} == {len(plan)} and not any(p.settlement for p in plan)
        assert sum(p.amount_minor for p in plan) == BALANCE_MINOR, name
        dates = [p.due_date for p in plan]
        assert dates == sorted(dates) and len(set(dates)) == len(dates), dates
        first_window = {"early": 14, "late": 7}[stage]
        assert today <= dates[0] <= today + timedelta(days=first_window), (name, dates)
        assert plan[0].amount_minor >= BALANCE_MINOR // 10  # 10% first payment in both stages
        assert run.call.hardship_note is not None if name == "hardship" else True
    # Two proposals refused with their reasons (each answered by a counter-offer), then one
    # plan accepted: the debtor's third answer took the second counter-offer.
    async with orch.sessions() as s:
        plan_steps = list(
            (
                await s.scalars(
                    select(CallStepEvent)
                    .where(
                        CallStepEvent.call_id == runs["plan_two_counters"].call.id,
                        CallStepEvent.step == "tool_call",
                    )
                    .order_by(CallStepEvent.at, CallStepEvent.sequence)
                )
            ).all()
        )
    plans = [r for r in plan_steps if r.detail.get("tool") == "record_payment_plan"]
    assert [r.detail["tool_result"] for r in plans] == ["rejected", "rejected", "accepted"], [
        (r.detail, r.reason) for r in plan_steps
    ]
    assert all(r.reason is not None for r in plans[:2])


async def test_objections_take_their_routes(orch: Orch, runs: dict[str, Run]) -> None:
    """Hardship with no plan the debtor can keep: a callback and the note. Already paid: a
    dispute with its reason. In writing: the validation notice, no promise. Who is this: the
    company's number before anything about the debt, then the call goes on to a promise."""
    no_plan = runs["hardship_no_plan"]
    assert no_plan.promise is None and no_plan.callback is not None
    assert no_plan.call.hardship_note
    assert runs["cant_talk"].callback is not None and runs["cant_talk"].promise is None
    paid = runs["already_paid"]
    assert paid.promise is None and paid.callback is None
    async with orch.sessions() as s:
        steps = list(
            (
                await s.scalars(
                    select(CallStepEvent).where(
                        CallStepEvent.call_id == paid.call.id, CallStepEvent.step == "tool_call"
                    )
                )
            ).all()
        )
    (dispute,) = [r for r in steps if r.detail.get("tool") == "report_dispute"]
    assert dispute.reason is None
    written = runs["written_request"]
    assert written.promise is None and "written notice" in _said(written, "agent")
    scam = runs["scam_check"]
    agent = [t.text for t in scam.turns if t.speaker == "agent"]
    checked = next(i for i, text in enumerate(agent) if "You can check this call" in text)
    disclosed = next(i for i, text in enumerate(agent) if "attempt to collect a debt" in text)
    assert checked < disclosed, agent  # the number comes before anything about the debt
    assert "8 0 0" in agent[checked] and scam.promise is not None


async def test_callbacks_are_stored(runs: dict[str, Run]) -> None:
    cb = runs["callback_later"].callback
    assert cb is not None
    local = cb.scheduled_for.astimezone(ZoneInfo(TZ))
    assert local.date() == today_in_tz() + timedelta(days=1)
    # "Tomorrow at 5pm": the OpenAI simulator's policy reads times in UTC (the facts block it
    # parses carries no time zone), so 17:00 UTC is accepted as well as 17:00 local.
    assert 17 in (local.hour, cb.scheduled_for.astimezone(UTC).hour)
    hostile = runs["hostile"].callback
    assert hostile is not None and hostile.reason.startswith("derailed")


async def test_interrupter_hears_no_agent_audio_after_clear(runs: dict[str, Run]) -> None:
    run = runs["interrupter"]
    stream = run.stream
    clears = stream["clears"]
    interrupted = [t for t in run.turns if t.speaker == "agent" and t.interrupted]
    assert len(clears) >= 2 and len(interrupted) == len(clears)
    lines = stream["debtor_lines"]
    segments = stream["agent_audio"]
    for clear in clears:
        t = clear["at_ms"]
        # Little was queued at Twilio when we cleared: we pace ~100 ms ahead, not the turn.
        assert clear["dropped_ms"] <= TUNING.lead_ms + 40
        line = next(ln for ln in lines if ln["start_ms"] <= t <= ln["end_ms"])
        # From the clear until the debtor finished, the phone played no agent audio.
        for seg in segments:
            assert not (seg["start_ms"] < line["end_ms"] and seg["end_ms"] > t + 20), (seg, line)
        # The reaction: debtor onset → clear, within the confirmation window and a little.
        assert t - line["start_ms"] <= TUNING.barge_in_min_speech_ms + 120
    for rec in run.call.latency:
        if rec["turn_index"] in {t.index for t in interrupted}:
            assert rec["barge_in_to_clear_ms"] is not None
            assert rec["barge_in_to_clear_ms"] <= TUNING.barge_in_min_speech_ms + 120


async def test_a_cough_pauses_the_agent_without_losing_a_word(runs: dict[str, Run]) -> None:
    """A sound too short for a barge-in still silences the agent at once (our early `clear`);
    the agent then carries on from where the phone stopped playing: the same audio reaches the
    phone as in the same conversation without the cough, nothing cut, nothing said twice."""
    cough, plain = runs["cougher"], runs["cooperative"]
    stream = cough.stream
    [hm] = [ln for ln in stream["debtor_lines"] if ln["text"] == "Mm"]
    [clear] = [c for c in stream["clears"] if hm["start_ms"] <= c["at_ms"] <= hm["end_ms"] + 40]
    assert clear["at_ms"] - hm["start_ms"] <= 100  # silenced well before a barge-in is confirmed
    assert not any(t.interrupted for t in cough.turns)
    said = [t.text for t in cough.turns if t.speaker == "agent"]
    plain_said = [t.text for t in plain.turns if t.speaker == "agent"]
    assert [t.replace("Cougher", "X") for t in said] == [
        t.replace("Cooperative", "X") for t in plain_said
    ]
    # Tone voice: exactly MS_PER_CHAR per character, so the audio differs by the names alone.
    names_ms = MS_PER_CHAR * (sum(map(len, said)) - sum(map(len, plain_said)))
    delta_ms = stream["agent_audio_ms"] - plain.stream["agent_audio_ms"]
    assert abs(delta_ms - names_ms) <= 2 * FRAME_MS, (delta_ms, names_ms)
    # The pause really happened: agent audio stopped during the cough and started again after.
    after = [s for s in stream["agent_audio"] if s["start_ms"] >= clear["at_ms"]]
    assert after and after[0]["start_ms"] >= hm["end_ms"]


async def test_interrupted_turn_holds_only_what_was_played(runs: dict[str, Run]) -> None:
    run = runs["interrupter"]
    stream = run.stream
    segments = stream["agent_audio"]
    interrupted = [t for t in run.turns if t.speaker == "agent" and t.interrupted]
    lines = stream["debtor_lines"]
    for turn, clear in zip(interrupted, stream["clears"], strict=True):
        t = clear["at_ms"]
        line = next(ln for ln in lines if ln["start_ms"] <= t <= ln["end_ms"])
        # The turn's audio: everything played since the debtor line before it, until the clear.
        since = max([ln["end_ms"] for ln in lines if ln["end_ms"] <= line["start_ms"]] or [0])
        played_ms = sum(
            min(seg["end_ms"], t) - seg["start_ms"]
            for seg in segments
            if since <= seg["start_ms"] < t
        )
        # Tone voice: exactly MS_PER_CHAR of audio per character (spaces included).
        expected_chars = played_ms / MS_PER_CHAR
        assert abs(len(turn.text) - expected_chars) <= 12, (turn.text, played_ms)
        # A prefix of what the agent meant to say (in one of the call's contexts: the lines made
        # ahead at dial, such as the voicemail message, start the same way).
        meant = [" ".join(c["text"].split()) for c in run.tts_contexts]
        assert any(text.startswith(turn.text) for text in meant), (turn.text, meant)
    # The model was told: the next agent turn follows the debtor's words, not the cut text.
    assert interrupted[0].text and "AI" in interrupted[0].text


async def test_silent_debtor_is_reprompted_then_the_agent_hangs_up(runs: dict[str, Run]) -> None:
    run = runs["silent"]
    agent = [t.text for t in run.turns if t.speaker == "agent"]
    assert len(agent) == 2 + TUNING.max_reprompts - 1 or len(agent) >= 2
    assert "still there" in " ".join(agent)
    assert run.stream["stop_reason"] == "rest_hangup"


async def test_agent_hangs_up_after_its_goodbye(runs: dict[str, Run]) -> None:
    for name in ("cooperative", "disputes", "stop_calling", "wrong_person", "hostile"):
        run = runs[name]
        stream = run.stream
        # The phone heard the whole goodbye before the line dropped.
        assert stream["agent_audio_queued_bytes"] == 0, name
        assert stream["stop_reason"] in ("rest_hangup", "persona_hangup"), name


async def test_usage_is_metered(runs: dict[str, Run]) -> None:
    usage = runs["cooperative"].call.usage
    assert usage is not None
    assert usage["llm_input_tokens"] > 0 and usage["llm_output_tokens"] > 0
    assert usage["tts_characters"] > 50 and usage["stt_audio_seconds"] > 5
    assert usage["telephony_seconds"] >= runs["cooperative"].call.duration_seconds


async def test_fixed_lines_play_from_audio_made_ahead(runs: dict[str, Run]) -> None:
    """The disclosure and the goodbyes are made while the call goes on (`premade_lines`): when
    the core hands one out, its audio goes straight to the phone, with no TTS round trip, and
    the transcript and the recording get it as for live audio."""
    made = [(run, r) for run in runs.values() for r in run.call.latency if r.get("premade_audio")]
    assert len(made) >= 3, [r.get("turn_kind") for run in runs.values() for r in run.call.latency]
    for run, rec in made:
        assert rec["fixed_line"], rec  # only lines the code speaks are made ahead
        turn = next(t for t in run.turns if t.index == rec["turn_index"])
        assert turn.text.strip()
    # Made on the synthesizer's own socket, in contexts named after the call that paid.
    premade = {
        ctx["context_id"].split("-")[1]
        for conn in VENDOR_RECORDS["elevenlabs"]
        for ctx in conn["contexts"]
        if ctx["context_id"].startswith("premade-")
    }
    assert {str(run.call.id).split("-")[0] for run, _ in made} <= premade


async def test_a_refused_late_date_is_answered_by_its_line_before_the_model_is_asked_again(
    runs: dict[str, Run],
) -> None:
    """The questioner asks to wait until next month: the guard refuses that date and its line
    ("I can only note a payment up to ...") is said first; the model, asked again because the
    debtor's words were a question, answers after it. The sound waited for one request."""
    recs = [r for r in runs["questioner"].call.latency if r.get("turn_kind") != "greeting"]
    refused = [r for r in recs if "refused:record_payment_promise" in (r.get("asked_again") or [])]
    assert refused, [r.get("asked_again") for r in recs]
    for rec in refused:
        assert rec["llm_requests_before_audio"] == 1, rec
    texts = [t.text for t in runs["questioner"].turns if t.speaker == "agent"]
    assert any("only note a payment up to" in text for text in texts), texts
    assert runs["questioner"].call.outcome == "promise_to_pay"
    # Every reply turn of the call waited for at most one model request.
    assert max(r.get("llm_requests_before_audio", 0) for r in recs) <= 1, recs


async def test_early_generation_is_kept_when_the_final_matches(runs: dict[str, Run]) -> None:
    """The model request starts when our VAD hears the debtor pause, before it declares the
    end of speech; with the simulator's finals matching its interims, replies use it, and each
    call's counts add up."""
    hits = 0
    leads: list[int] = []
    for run in runs.values():
        early = (run.call.usage or {}).get("early_generation")
        if early is None:
            continue
        assert early["hits"] + early["discards"] <= early["starts"]
        hits += early["hits"]
        kept = [r for r in run.call.latency if r.get("early") == "hit"]
        assert len(kept) <= early["hits"]
        leads += [
            r["end_of_speech_wait_ms"] - r["llm_request_after_speech_end_ms"]
            for r in kept
            if r.get("end_of_speech_wait_ms") is not None
            and r.get("llm_request_after_speech_end_ms") is not None
        ]
    assert hits >= 5
    # Started at the pause (60 ms of silence), not at the end (240 ms): ~180 ms sooner.
    assert leads and sorted(leads)[len(leads) // 2] >= 100, leads


# ---- vendor failures --------------------------------------------------------------------


def _llm_requests(run: Run) -> list[dict[str, Any]]:
    """The OpenAI simulator's records of this call's requests, in order."""
    key = str(run.call.id)
    return [r for r in VENDOR_RECORDS["openai"] if r["params"].get("safety_identifier") == key]


def _connections(vendor: str, run: Run) -> list[dict[str, Any]]:
    """This call's Deepgram connections (tag = CallSid) or ElevenLabs connections (contexts are
    named after the CallSid)."""
    sid = run.call.twilio_call_sid
    assert sid
    if vendor == "deepgram":
        return [c for c in VENDOR_RECORDS["deepgram"] if sid in c["tags"]]
    return [
        c
        for c in VENDOR_RECORDS["elevenlabs"]
        if any(ctx["context_id"].startswith(sid[-8:]) for ctx in c["contexts"])
    ]


def _at(record: dict[str, Any], key: str = "at") -> datetime:
    return datetime.fromisoformat(record[key])


def _gaps(records: list[dict[str, Any]]) -> list[float]:
    return [(_at(b) - _at(a)).total_seconds() for a, b in itertools.pairwise(records)]


def _went_on(run: Run) -> None:
    """The fault left no trace in the call: no failure, no apology, the expected outcome."""
    assert run.call.failure_reason is None, run.call.failure_reason
    assert (run.call.status, run.call.outcome) == ("completed", run.expect.outcome)
    assert not any("technical problem" in t.text for t in run.turns)
    assert run.stream["stop_reason"] in ("rest_hangup", "persona_hangup")


async def test_llm_429_is_retried_after_retry_after_then_answered(runs: dict[str, Run]) -> None:
    run = runs["llm_429"]
    _went_on(run)
    reqs = _llm_requests(run)
    # The same request three times: 429, 429 (retry-after: 1 s, waited out), then answered.
    assert [r.get("fault", {}).get("status") for r in reqs[:3]] == [429, 429, None]
    assert reqs[0]["messages"] == reqs[1]["messages"] == reqs[2]["messages"]
    assert all(1.0 <= g < 1.6 for g in _gaps(reqs[:3])), _gaps(reqs[:3])
    assert all("fault" not in r for r in reqs[3:])
    assert run.promise is not None and run.promise.amount_minor == BALANCE_MINOR


async def test_llm_500_is_retried(runs: dict[str, Run]) -> None:
    run = runs["llm_500"]
    _went_on(run)
    reqs = _llm_requests(run)
    assert [r.get("fault", {}).get("status") for r in reqs[:2]] == [500, None]
    assert reqs[0]["messages"] == reqs[1]["messages"]
    # The SDK's backoff: 0.5 s less up to 25% jitter.
    assert 0.37 <= _gaps(reqs[:2])[0] < 1.0, _gaps(reqs[:2])


async def test_llm_request_hanging_past_the_timeout_is_given_up_and_retried(
    runs: dict[str, Run],
) -> None:
    run = runs["llm_hang"]
    _went_on(run)
    reqs = _llm_requests(run)
    hung = reqs[0]["fault"]
    assert hung["hang_s"] == 30
    # We gave up after our timeout, not the vendor's 30 s, and asked again. Our
    # clock starts before the request reaches the simulator, so its figure can
    # fall a few ms short of the timeout.
    assert OPENAI_TIMEOUT_S - 0.2 <= hung["client_gave_up_after_s"] < OPENAI_TIMEOUT_S + 0.5
    assert "fault" not in reqs[1] and reqs[1]["messages"] == reqs[0]["messages"]
    assert OPENAI_TIMEOUT_S + 0.37 <= _gaps(reqs[:2])[0] < OPENAI_TIMEOUT_S + 1.5


async def test_llm_stream_cut_before_any_word_was_spoken_is_asked_again(
    runs: dict[str, Run],
) -> None:
    run = runs["llm_drop"]
    _went_on(run)
    reqs = _llm_requests(run)
    assert reqs[0]["fault"]["drop_mid_stream_after_chunks"] == 2
    assert "fault" not in reqs[1] and reqs[1]["messages"] == reqs[0]["messages"]
    agent = [t.text for t in run.turns if t.speaker == "agent"]
    assert len(agent) == len(set(agent))  # nothing said twice


async def test_llm_outage_ends_politely_with_an_apology(runs: dict[str, Run]) -> None:
    run = runs["llm_down"]
    assert run.call.failure_reason and run.call.failure_reason.startswith("llm")
    last = [t for t in run.turns if t.speaker == "agent"][-1]
    assert "technical problem" in last.text and not last.interrupted
    assert run.stream["stop_reason"] in ("rest_hangup", "persona_hangup")
    # One reply was attempted: the request and its two retries, all 503; then the apology.
    reqs = _llm_requests(run)
    assert [r["fault"]["status"] for r in reqs] == [503, 503, 503]


async def test_stt_socket_drop_mid_turn_loses_no_words(runs: dict[str, Run]) -> None:
    run = runs["stt_drop"]
    _went_on(run)
    conns = _connections("deepgram", run)
    assert len(conns) == 2, [(c["close_code"], c["close_reason"]) for c in conns]
    dropped, resumed = conns
    assert (dropped["close_code"], dropped["close_reason"]) == (1011, "NET-0000")
    assert dropped["fault"] is not None and resumed["close_code"] == 1000, (
        resumed["close_code"],
        resumed["close_reason"],
    )
    # The line cut after "Oh, right." is in the transcript whole: the words heard before the
    # drop (interim, kept) and those after it (the new socket, fed the audio since them).
    debtor = [t.text for t in run.turns if t.speaker == "debtor"]
    assert debtor[-1] == "Oh, right. Yes, I can pay the full amount today.", debtor
    assert run.promise is not None and run.promise.due_date == today_in_tz()


async def test_stt_outage_ends_politely(runs: dict[str, Run]) -> None:
    run = runs["stt_down"]
    assert run.call.failure_reason and run.call.failure_reason.startswith("stt")
    agent = [t.text for t in run.turns if t.speaker == "agent"]
    assert "technical problem" in agent[-1]
    assert run.stream["stop_reason"] == "rest_hangup"
    sid = run.call.twilio_call_sid
    refused = [f for f in VENDOR_RECORDS["faults"]["fired"] if f.get("tags") == [sid]]
    assert len(refused) == 3  # the first connection and two reconnects
    assert _connections("deepgram", run) == []


async def test_tts_socket_drop_mid_turn_resynthesizes_the_rest(runs: dict[str, Run]) -> None:
    run = runs["tts_drop"]
    _went_on(run)
    conns = _connections("elevenlabs", run)
    assert len(conns) == 2
    dropped, resumed = conns
    assert dropped["close_code"] == 1011 and dropped["fault"] is not None
    # The turn cut mid-way went on in a new context with what had not been synthesized yet.
    (cut,) = [c for c in resumed["contexts"] if "~" in c["context_id"]]
    rest = " ".join(cut["text"].split())
    assert rest and cut["generations"] and cut["audio_bytes"] > 0
    turn = next(t for t in run.turns if t.speaker == "agent" and t.text.endswith(rest))
    assert not turn.interrupted
    # The phone heard every agent turn once: the tone voice is MS_PER_CHAR per character, so
    # a sentence lost or said twice would show (slack: sentence gaps, a word said again).
    said = sum(len(t.text) for t in run.turns if t.speaker == "agent")
    assert abs(run.stream["agent_audio_ms"] / MS_PER_CHAR - said) <= 25
    assert run.promise is not None and run.promise.amount_minor == 15000


async def test_tts_outage_hangs_up_rather_than_leaving_dead_air(runs: dict[str, Run]) -> None:
    run = runs["tts_down"]
    assert run.call.failure_reason and run.call.failure_reason.startswith("tts")
    assert run.stream["agent_audio"] == []
    assert run.stream["stop_reason"] == "rest_hangup"
    assert run.stream["duration_ms"] < 10_000
    conns = _connections("elevenlabs", run)
    assert len(conns) == 3 and all(c["close_code"] == 1011 for c in conns)


async def test_vendor_failure_recovery_times(runs: dict[str, Run]) -> None:
    """Prints how long each fault held the call up (run with -s)."""
    lines = []
    for name in ("llm_429", "llm_500", "llm_hang", "llm_drop"):
        reqs = _llm_requests(runs[name])
        answered = next(r for r in reqs if "fault" not in r)
        wait = (_at(answered) - _at(reqs[0])).total_seconds()
        lines.append(f"{name:9s} first request → the request answered: {wait:.2f} s")
    for vendor, name in (("deepgram", "stt_drop"), ("elevenlabs", "tts_drop")):
        dropped, resumed = _connections(vendor, runs[name])[:2]
        gap = (_at(resumed, "opened_at") - _at(dropped, "closed_at")).total_seconds()
        lines.append(f"{name:9s} socket closed → reopened: {gap * 1000:.0f} ms")
        assert gap < 1.0
    for name in ("llm_down", "stt_down", "tts_down"):
        call = runs[name].call
        assert call.ended_at is not None and call.answered_at is not None
        took = (call.ended_at - call.answered_at).total_seconds()
        lines.append(f"{name:9s} answered → call ended: {took:.1f} s")
    print("\n" + "\n".join(lines))


# ---- dispatch idempotency and webhook security ------------------------------------------


async def test_duplicated_dispatch_places_one_twilio_call(orch: Orch) -> None:
    number = await orch.assign("busy")
    call_id, data = await orch.new_call(number)
    same = str(uuid.uuid4())
    # The same message redelivered, and a second dispatch of the same call under a new ce-id.
    await asyncio.gather(
        orch.dispatch(data, ce_id=same),
        orch.dispatch(data, ce_id=same),
        orch.dispatch(data),
    )
    call = await orch.wait_terminal(call_id, within=30)
    await asyncio.sleep(1.0)  # any late duplicate would have dialled by now
    assert call.status == "busy"
    assert len(await orch.sim_calls_to(number)) == 1
    async with orch.sessions() as s:
        n = await s.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.payload["call"]["id"].astext == str(call_id))
        )
    assert n == 1


async def test_the_event_loop_never_stalled(runs: dict[str, Run]) -> None:
    # 21 concurrent calls, the four simulators, the test and the Pub/Sub client threads share
    # one event loop (and 2 CPUs with PostgreSQL and two emulators) here. Nothing of ours may
    # block it: a stall longer than the ~100 ms of audio queued at Twilio is an audible gap.
    lags = sorted(LOOP_LAGS)
    assert lags
    # Bounds leave room for a busy CI box (other processes share the 2 CPUs); a synchronous
    # vendor call or a full GC over the SDKs (~250 ms, see app.py) would still break them.
    assert lags[int(len(lags) * 0.99)] < 0.05, lags[-10:]
    assert lags[-1] < 0.2, lags[-10:]


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


async def test_latency_figures(runs: dict[str, Run]) -> None:
    """Prints the measured figures (run with -s) and checks the budgets that are ours."""
    replies = [
        r
        for name, run in runs.items()
        if RUNS[name].fault is None and run.expect.answered
        for r in run.call.latency
        if r["kind"] == "reply" and r["voice_to_voice_ms"] is not None
    ]
    keys = (
        "voice_to_voice_ms",
        "stt_final_ms",
        "llm_first_token_ms",
        "llm_first_sentence_ms",
        "tts_first_byte_ms",
        "orchestrator_overhead_ms",
        "own_overhead_ms",
    )
    lines = [f"reply turns: {len(replies)}"]
    for k in keys:
        vals = [float(r[k]) for r in replies if r[k] is not None]
        lines.append(f"{k:26s} p50 {_pct(vals, 0.5):6.0f}  p95 {_pct(vals, 0.95):6.0f}")
    barge = [
        float(r["barge_in_to_clear_ms"])
        for run in runs.values()
        for r in run.call.latency
        if r["barge_in_to_clear_ms"] is not None
    ]
    lines.append(f"barge_in_to_clear_ms       {sorted(barge)}")
    lags = sorted(LOOP_LAGS)
    lines.append(f"loop lag ms p50 {_pct(lags, 0.5) * 1000:.1f} p99 {_pct(lags, 0.99) * 1000:.1f}")
    print("\n" + "\n".join(lines))
    assert len(replies) >= 15
    own = [float(r["own_overhead_ms"]) for r in replies]
    # Our own share of voice-to-voice: a few ms (the tail is this shared loop's contention).
    assert _pct(own, 0.5) < 10 and _pct(own, 0.95) < 80, sorted(own)
    # Streaming: a reply's first sentence (or clause) goes to TTS before the model is done.
    # (Whether the debtor also hears it before then depends on when the final came: an early
    # request started at the pause may finish while we still wait for it. A tool turn's first
    # audio is the fixed line said once the one request is done.)
    plain = [r for r in replies if r["llm_total_ms"] and r["turn_kind"] == "plain_turn"]
    assert plain
    streamed = [r for r in plain if r["llm_first_sentence_ms"] < r["llm_total_ms"]]
    assert len(streamed) >= len(plain) // 2, [
        (r["llm_first_sentence_ms"], r["llm_total_ms"]) for r in plain
    ]


def _subsequence(wanted: list[Any], seen: list[Any]) -> bool:
    it = iter(seen)
    return all(any(w == s for s in it) for w in wanted)


async def test_the_questioners_steps_carry_each_guard_result_in_order(
    orch: Orch, runs: dict[str, Run]
) -> None:
    """She confirms, asks to pay next month (the guard refuses the date), then promises."""
    call_id = runs["questioner"].call.id
    async with orch.sessions() as s:
        rows = (
            await s.scalars(
                select(CallStepEvent)
                .where(CallStepEvent.call_id == call_id)
                .order_by(CallStepEvent.at, CallStepEvent.sequence)
            )
        ).all()
    names = [r.step for r in rows]
    assert names[:4] == ["dialing", "ringing", "answered", "amd_result"], names
    assert names.count("verified") == 1
    by_step = {r.step: r for r in rows}
    assert by_step["amd_result"].detail == {"answered_by": "human"}
    assert by_step["dialing"].detail == {"dial_attempt": 1}
    ended = by_step["ended"]
    assert ended.reason is None and ended.detail["outcome"] == "promise_to_pay"
    assert ended.detail["duration_seconds"] > 0
    tools = [
        (r.detail["tool"], r.detail["tool_result"], r.reason) for r in rows if r.step == "tool_call"
    ]
    assert _subsequence(
        [
            ("confirm_identity", "accepted", None),
            ("record_payment_promise", "rejected", "date_too_late"),
            ("record_payment_promise", "accepted", None),
        ],
        tools,
    ), tools
    # Verified by confirm_identity, the disclosure heard after it, the promise after that.
    order = [(r.step, r.detail.get("tool")) for r in rows if r.step != "amd_result"]
    assert _subsequence(
        [
            ("tool_call", "confirm_identity"),
            ("verified", None),
            ("disclosure_spoken", None),
            ("tool_call", "record_payment_promise"),
            ("ended", None),
        ],
        order,
    ), order


async def test_the_dispatched_variant_is_rendered_and_recorded(
    orch: Orch, runs: dict[str, Run]
) -> None:
    """Dispatched with a prompt variant, the model is prompted with that variant's stage text,
    and the call (row, `call.completed`, transcript file) records the variant."""
    run = runs["plan_first"]
    variant, stage = "plan_first", DelinquencyStage.LATE
    prompts = default_prompt_set()
    ours = prompts.variants[stage][variant].body.splitlines()[-1]
    default = prompts.variants[stage]["default"].body.splitlines()[-1]
    mark_ours = "Lead with a plan rather than the full balance"
    mark_default = "Ask for the full balance by"
    assert mark_ours in ours and mark_default in default and mark_ours not in default
    version = prompts.version(stage, variant)
    assert run.call.outcome == "promise_to_pay", run.call.failure_reason

    requests = [
        r
        for r in VENDOR_RECORDS["openai"]
        if r["params"].get("safety_identifier") == str(run.call.id)
    ]
    systems = [r["messages"][0]["content"] for r in requests]
    assert systems and all(m["role"] == "system" for m in (r["messages"][0] for r in requests))
    verified = [p for p in systems if "state: negotiation" in p or "state: commitment" in p]
    assert verified, "the model was never asked after verification"
    assert all(mark_ours in p and mark_default not in p for p in verified)
    assert not any(mark_ours in p for p in systems if p not in verified)
    assert {r["params"]["prompt_cache_key"] for r in requests} == {prompt_cache_key(version)}

    assert (run.call.prompt_variant, run.call.prompt_version) == (variant, version)
    (event,) = run.events
    assert event.payload["call"]["prompt_variant"] == variant
    assert event.payload["call"]["prompt_version"] == version
    assert run.transcript is not None
    assert (run.transcript["prompt_variant"], run.transcript["prompt_version"]) == (
        variant,
        version,
    )
