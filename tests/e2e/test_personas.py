"""Every persona through all three services, each its own process, over real sockets.

One deployment (PostgreSQL, Pub/Sub and GCS emulators, simulators, Client API, Call Scheduler,
Voice Orchestrator) and one webhook receiver, shared by the whole package (harness.py,
conftest.py); every persona's call is placed at once through the REST API, then each is
checked: status and outcome, promise or callback, transcript in order and identical in the
stored transcript object, a valid stereo WAV as long as the call, exactly one signed
`call.completed` webhook, and no agent audio over the debtor beyond a barge-in reaction.
"""

from __future__ import annotations

import io
import json
import math
import wave
from typing import Any

import pytest

from generated.call_usage import CallUsage
from services.common.pricing import Prices, cost_of
from services.common.settings import Settings

from .harness import BALANCE, EXPECT, PERSONAS, Run

# Longest stretch of agent audio the phone may hear over the debtor: the barge-in reaction
# (onset → clear, target p95 150 ms) plus Twilio-side buffering of one pacing window.
MAX_OVERLAP_PER_BARGE_IN_MS = 400


@pytest.mark.parametrize("persona", PERSONAS)
def test_status_and_outcome(runs: dict[str, Run], persona: str) -> None:
    run, want = runs[persona], EXPECT[persona]
    assert run.call["status"] == want.status, run.call
    assert run.call["outcome"] == want.outcome, run.call
    assert (run.call.get("answered_at") is not None) == want.answered


def test_promises_and_callbacks_stored(runs: dict[str, Run]) -> None:
    full = runs["cooperative"].call["payment_promise"]
    assert full["amount"] == {"amount_minor": BALANCE, "currency": "USD"}
    partial = runs["negotiator"].call["payment_promise"]
    assert partial["amount"]["amount_minor"] == 15_000  # "I could do 150 dollars"
    assert partial["due_date"] > full["due_date"]  # "next Friday", later than today
    for persona in ("callback_later", "hostile", "injector"):
        cb = runs[persona].call["callback"]
        assert cb is not None and cb["scheduled_for"] and cb["reason"]
    for persona in (
        "wrong_person",
        "disputes",
        "stop_calling",
        "silent",
        "busy",
        "no_answer",
        "injector",
    ):
        assert runs[persona].call["payment_promise"] is None


@pytest.mark.parametrize("persona", [p for p in PERSONAS if EXPECT[p].answered])
def test_transcript_in_order_and_in_the_transcript_object(
    runs: dict[str, Run], persona: str
) -> None:
    run = runs[persona]
    turns = run.call["transcript"]
    assert turns, "answered call without a transcript"
    assert [t["index"] for t in turns] == list(range(len(turns)))
    starts = [t["started_at"] for t in turns]
    assert starts == sorted(starts)
    assert any(t["speaker"] == "agent" for t in turns)
    assert run.transcript_object is not None
    stored = run.transcript_object.get("turns", run.transcript_object.get("transcript"))
    assert [(t["speaker"], t["text"]) for t in stored] == [(t["speaker"], t["text"]) for t in turns]
    # Every line the debtor finished saying is in the stored transcript, word for word.
    heard = _words(" ".join(t["text"] for t in turns if t["speaker"] == "debtor"))
    for line in run.sim["streams"][-1]["debtor_lines"]:
        if line["end_ms"] is not None and not line["cut_off"]:
            assert _words(line["text"]) <= heard, (line["text"], heard)


def _words(text: str) -> set[str]:
    return {w.strip(".,?!'\"").lower() for w in text.split()} - {""}


@pytest.mark.parametrize("persona", [p for p in PERSONAS if EXPECT[p].answered])
def test_recording_is_stereo_wav_as_long_as_the_call(runs: dict[str, Run], persona: str) -> None:
    run = runs[persona]
    assert run.wav is not None
    with wave.open(io.BytesIO(run.wav)) as w:
        assert w.getnchannels() == 2
        assert w.getframerate() == 8000
        assert w.getsampwidth() == 2
        seconds = w.getnframes() / w.getframerate()
    stream_s = run.sim["streams"][-1]["duration_ms"] / 1000
    assert abs(seconds - stream_s) < 1.5, (seconds, stream_s)


@pytest.mark.parametrize("persona", PERSONAS)
def test_exactly_one_signed_webhook(runs: dict[str, Run], persona: str) -> None:
    run = runs[persona]
    assert len(run.hooks) == 1, [h.headers.get("webhook-id") for h in run.hooks]
    hook = run.hooks[0]
    assert hook.signature_valid
    assert hook.payload["type"] == "call.completed"
    assert hook.payload["data"]["call"]["outcome"] == run.call["outcome"]
    assert {"webhook-id", "webhook-timestamp", "webhook-signature"} <= set(hook.headers)


@pytest.mark.parametrize("persona", [p for p in PERSONAS if EXPECT[p].answered])
def test_no_agent_audio_over_the_debtor(runs: dict[str, Run], persona: str) -> None:
    stream = run_stream(runs[persona])
    clears = len(stream["clears"])
    for start, end in stream["overlaps"]:
        # Any overlap must be a barge-in the agent reacted to with a clear.
        assert end - start <= MAX_OVERLAP_PER_BARGE_IN_MS, stream["overlaps"]
        assert any(start <= c["at_ms"] <= end + 100 for c in stream["clears"]), (start, end)
    if persona != "interrupter":
        assert stream["overlap_ms"] == 0 or clears > 0


def test_interrupter_was_cut_off_and_heard_nothing_after_clear(runs: dict[str, Run]) -> None:
    run = runs["interrupter"]
    stream = run_stream(run)
    assert stream["clears"], "the interrupter barged in but no clear was sent"
    assert any(t["interrupted"] for t in run.call["transcript"] if t["speaker"] == "agent")
    for clear in stream["clears"]:
        line = next(
            (
                ln
                for ln in stream["debtor_lines"]
                if ln["start_ms"] <= clear["at_ms"] <= (ln["end_ms"] or 1e12)
            ),
            None,
        )
        if line is None:
            continue
        played_after = [
            s for s in stream["agent_audio"] if clear["at_ms"] < s["start_ms"] < line["end_ms"]
        ]
        assert played_after == [], (clear, line, played_after)


def run_stream(run: Run) -> dict[str, Any]:
    streams = run.sim.get("streams") or []
    assert streams, json.dumps(run.sim)[:500]
    return streams[-1]  # type: ignore[no-any-return]


@pytest.mark.parametrize("persona", ["cooperative", "negotiator", "interrupter", "hostile"])
def test_usage_matches_what_crossed_the_sockets_and_cost_adds_up(
    runs: dict[str, Run], persona: str
) -> None:
    """Usage is metered from what the orchestrator actually sent: the simulators' own records
    (audio seconds at Deepgram, characters at ElevenLabs, tokens OpenAI reported) agree."""
    run = runs[persona]
    usage, cost = run.call["usage"], run.call["cost"]
    records = run.sim["_vendor_records"]
    sid, call_id = run.call["twilio_call_sid"], run.call["id"]
    assert usage["telephony_seconds"] == int(run.sim["duration"])  # Twilio's own duration
    dg_seconds = sum(r["audio_seconds"] for r in records["deepgram"] if sid in r["tags"])
    assert usage["stt_audio_seconds"] == math.ceil(dg_seconds - 1e-9)
    chars = sum(
        c["characters"]
        for conn in records["elevenlabs"]
        for c in conn["contexts"]
        # Its live contexts, and the lines it had made ahead (those another call made first
        # cost it nothing).
        if c["context_id"].startswith((sid[-8:], f"premade-{call_id}-"))
    )
    assert usage["tts_characters"] == chars
    mine = [r for r in records["openai"] if r["params"].get("safety_identifier") == call_id]
    assert mine
    metered = (
        usage["llm_input_tokens"],
        usage["llm_output_tokens"],
        usage["llm_cached_input_tokens"],
    )
    sent = (
        sum(r["usage"]["prompt_tokens"] for r in mine),
        sum(r["usage"]["completion_tokens"] for r in mine),
        sum((r["usage"].get("prompt_tokens_details") or {}).get("cached_tokens", 0) for r in mine),
    )
    if (usage.get("early_generation") or {}).get("discards"):
        # An early request cancelled mid-stream never gets its usage chunk: its output is in
        # early_generation.wasted_output_tokens, its prompt is not metered (a known gap).
        assert all(m <= s for m, s in zip(metered, sent, strict=True)), (metered, sent)
    else:
        assert metered == sent
    expected = cost_of(CallUsage.model_validate(usage), Prices.from_settings(Settings()))
    assert cost == expected.model_dump()
    assert cost["total_micro_usd"] == sum(
        cost[k] for k in ("telephony_micro_usd", "stt_micro_usd", "llm_micro_usd", "tts_micro_usd")
    )


def test_right_party_verification_levels(runs: dict[str, Run]) -> None:
    """A fact on file is asked for and given (its kind is kept, never its value); without one
    the name alone is accepted; nobody confirmed is `none`. The webhook carries the same."""

    def level(persona: str) -> tuple[str, str | None]:
        call = runs[persona].call
        return call["verification"], call["verification_fact"]

    assert level("cooperative") == ("name_and_fact", "date_of_birth")
    assert level("negotiator") == ("name_and_fact", "postal_code")
    for persona in ("interrupter", "disputes", "callback_later", "stop_calling"):
        assert level(persona) == ("name_only", None), persona
    for persona in ("wrong_person", "silent", "no_answer", "busy", "wrong_dob"):
        assert level(persona) == ("none", None), persona
    hook_call = runs["cooperative"].hooks[0].payload["data"]["call"]
    assert (hook_call["verification"], hook_call["verification_fact"]) == level("cooperative")


def test_wrong_date_of_birth_twice_is_unverified_with_nothing_disclosed(
    runs: dict[str, Run],
) -> None:
    turns = runs["wrong_dob"].call["transcript"]
    agent = " ".join(t["text"] for t in turns if t["speaker"] == "agent").lower()
    debtor = " ".join(t["text"] for t in turns if t["speaker"] == "debtor")
    assert "january first" in debtor.lower() and "february second" in debtor.lower()
    assert agent.count("date of birth") >= 2  # asked, then asked once more
    assert "wasn't able to verify your identity" in agent
    for word in ("debt", "balance", "seven hundred", "owe", "payment"):
        assert word not in agent, word
    assert runs["wrong_dob"].call["payment_promise"] is None


def test_debtor_view_lists_facts_on_file_but_never_their_values(runs: dict[str, Run]) -> None:
    view = runs["cooperative"].debtor
    assert view["verification_facts"] == ["date_of_birth"]
    assert "date_of_birth" not in view and "1985" not in json.dumps(view)
    assert runs["negotiator"].debtor["verification_facts"] == ["postal_code"]
    assert "62704" not in json.dumps(runs["negotiator"].debtor)
    assert runs["interrupter"].debtor["verification_facts"] == []
