"""Per-turn timing math and the heard-text cut (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from generated.turn_latency import TurnLatency
from services.voice_orchestrator.latency import TurnTimings, union_length
from services.voice_orchestrator.session import heard_text, unspoken_rest, with_round_texts


def test_union_length_merges_overlaps_and_clips() -> None:
    assert union_length([], 0, 10) == 0
    assert union_length([(1, 3), (2, 5), (7, 8)], 0, 10) == pytest.approx(5)
    assert union_length([(-5, 2), (9, 20)], 0, 10) == pytest.approx(3)
    assert union_length([(3, 3)], 0, 10) == 0


def test_reply_turn_record_matches_the_schema_and_the_definitions() -> None:
    t = TurnTimings(kind="reply", trigger_at=10.0)
    t.speech_end_at = 10.0
    t.speech_end_wall = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    t.stt_final_at = 10.30
    t.llm_request_at = 10.302
    t.llm_first_token_at = 10.80
    t.llm_first_sentence_at = 11.00
    t.tts_first_text_at = 11.001
    t.tts_first_byte_at = 11.10
    t.first_audio_out_at = 11.105
    t.vendor_waits = [(10.0, 10.30), (10.302, 11.00), (11.001, 11.10)]
    rec = t.record(3)
    assert rec["turn_index"] == 3
    assert rec["stt_final_ms"] == 300
    assert rec["llm_first_token_ms"] == 498
    assert rec["tts_first_byte_ms"] == 99
    assert rec["voice_to_voice_ms"] == 1105
    assert rec["first_audio_out_ms"] == 1105
    # Schema definition: v2v minus the three headline latencies.
    assert rec["headline_residual_ms"] == 1105 - 300 - 498 - 99
    assert rec["orchestrator_overhead_ms"] == rec["own_overhead_ms"]
    # Ours: v2v minus every vendor wait (incl. the LLM finishing its first sentence).
    assert rec["own_overhead_ms"] == 1105 - 300 - 698 - 99
    assert rec["llm_first_sentence_ms"] == 698
    assert rec["barge_in_to_clear_ms"] is None
    TurnLatency.model_validate(rec)  # extra keys are ignored by the contract model


def test_greeting_has_no_voice_to_voice_and_barge_in_is_measured_from_onset() -> None:
    t = TurnTimings(kind="greeting", trigger_at=0.0)
    t.first_audio_out_at = 1.2
    t.barge_in_onset_at = 3.0
    t.barge_in_detected_at = 3.2
    t.clear_sent_at = 3.2022
    rec = t.record(0)
    assert rec["voice_to_voice_ms"] is None
    assert rec["orchestrator_overhead_ms"] is None
    assert rec["debtor_speech_end_at"] is None
    assert rec["first_audio_out_ms"] == 1200
    assert rec["barge_in_to_clear_ms"] == 202
    assert rec["barge_in_detect_to_clear_ms"] == 2
    TurnLatency.model_validate(rec)


def _reply(**fields: object) -> TurnTimings:
    t = TurnTimings(kind="reply", trigger_at=10.0, speech_end_at=10.0)
    for name, value in fields.items():
        setattr(t, name, value)
    return t


def test_tool_turn_record_counts_requests_and_times_each_first_token() -> None:
    t = _reply(
        vad_end_at=10.24,
        stt_final_at=10.30,
        llm_request_at=10.30,
        llm_first_token_at=10.95,
        llm_first_token_ats=[10.95, 11.60],
        llm_requests_before_audio=2,
        tool_calls=1,
        first_audio_out_at=11.80,
    )
    rec = t.record(3)
    assert rec["turn_kind"] == "tool_turn"
    assert rec["llm_requests_before_audio"] == 2
    # On the turn's timeline: ms after the debtor's speech end.
    assert rec["llm_first_token_ms_each"] == [950, 1600]
    assert rec["llm_first_token_ms"] == 650  # the schema's figure: first request only
    assert rec["end_of_speech_wait_ms"] == 240
    assert rec["tool_calls"] == 1
    assert rec["fixed_line"] is False
    assert rec["early"] is None
    TurnLatency.model_validate(rec)


def test_turn_kind_is_derived_from_what_came_before_the_first_audio() -> None:
    greeting = TurnTimings(kind="greeting", trigger_at=0.0, fixed_line=True)
    assert greeting.record(0)["turn_kind"] == "greeting"
    # A fixed line our code speaks after an accepted tool call: no model request before audio.
    fixed = _reply(fixed_line=True, tool_calls=1, llm_requests_before_audio=0)
    assert fixed.record(1)["turn_kind"] == "fixed_line"
    # A fixed line that had to wait for a model request first (a refusal) is a tool turn.
    refused = _reply(fixed_line=True, tool_calls=1, llm_requests_before_audio=2)
    assert refused.record(1)["turn_kind"] == "tool_turn"
    plain = _reply(llm_requests_before_audio=1, early="hit")
    rec = plain.record(2)
    assert rec["turn_kind"] == "plain_turn"
    assert rec["early"] == "hit"
    assert _reply(early="discard").record(2)["early"] == "discard"


def test_defaults_keep_the_old_keys_and_add_empty_extras() -> None:
    rec = _reply().record(1)
    assert rec["turn_kind"] == "plain_turn"
    assert rec["llm_requests_before_audio"] == 0
    assert rec["llm_first_token_ms_each"] == []
    assert rec["end_of_speech_wait_ms"] is None
    for key in ("voice_to_voice_ms", "orchestrator_overhead_ms", "kind", "llm_total_ms"):
        assert key in rec
    # Without a speech end (a resumed turn) the timeline starts at the trigger.
    t = TurnTimings(kind="resume", trigger_at=5.0, llm_first_token_ats=[5.5])
    assert t.record(4)["llm_first_token_ms_each"] == [500]


def aligned(text: str, ms_per_char: float = 50.0, start_ms: float = 0.0) -> list[float]:
    """The middles of the non-space characters, as the session keeps them."""
    return [
        start_ms + i * ms_per_char + ms_per_char / 2 for i, c in enumerate(text) if not c.isspace()
    ]


def test_heard_text_keeps_words_whose_middle_was_played() -> None:
    text = "Hello, this is Alex calling."
    chars = aligned(text)
    # "Hello," spans 0-300 ms (mid 150); "this" 350-550 (mid 450).
    assert heard_text(chars, text, 100, 1400) == ""
    assert heard_text(chars, text, 160, 1400) == "Hello,"
    assert heard_text(chars, text, 460, 1400) == "Hello, this"
    assert heard_text(chars, text, 10_000, 1400) == text
    assert heard_text(chars, text, 0, 1400) == ""


def test_heard_text_uses_our_spacing_across_generations() -> None:
    # Each sentence is generated separately: the alignment has no space between them.
    chars = aligned("Thank you.") + aligned("Acme is", start_ms=500)
    text = "Thank you. Acme is"
    assert heard_text(chars, text, 760, 850) == "Thank you. Acme"


def test_heard_text_without_alignment_is_proportional() -> None:
    text = "one two three four five six seven eight nine ten"
    assert heard_text([], text, 500, 1000) == "one two three four five"
    assert heard_text([], text, 2000, 1000) == text


def test_unspoken_rest_after_a_tts_drop_counts_without_spaces_and_keeps_words_whole() -> None:
    text = "Thank you. Acme Finance is a debt collector."
    # Two generations came back ("Thank you." + "Acme": no space between them in the alignment).
    assert unspoken_rest(text, len("Thankyou.Acme")) == "Finance is a debt collector."
    # Cut inside "Finance": the word is said again whole.
    assert unspoken_rest(text, len("Thankyou.AcmeFin")) == "Finance is a debt collector."
    assert unspoken_rest(text, 0) == text
    assert unspoken_rest(text, 10_000) == ""


def test_round_text_goes_back_into_the_tool_call_message() -> None:
    messages = [
        {"role": "system", "content": "x"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1"}]},
        {"role": "tool", "tool_call_id": "c1", "content": "{}"},
    ]
    out = with_round_texts(messages, {"c1": "Thanks, one moment."})
    assert out[1]["content"] == "Thanks, one moment."
    assert with_round_texts(messages, {}) is messages
