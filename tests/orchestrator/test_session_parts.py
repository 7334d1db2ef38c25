"""The session's pure parts with plain-number clocks: CallFlow, Transcript, PlayoutBuffer and
the early-generation match."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.voice_orchestrator.latency import TurnTimings
from services.voice_orchestrator.media.mulaw import FRAME_BYTES
from services.voice_orchestrator.media.recorder import StereoRecorder
from services.voice_orchestrator.session.early import normalise, same_request
from services.voice_orchestrator.session.flow import (
    AnswerNow,
    CallFlow,
    FlowTiming,
    HangUp,
    SayLine,
)
from services.voice_orchestrator.session.playout import PlayoutBuffer
from services.voice_orchestrator.session.transcript import Transcript
from services.voice_orchestrator.session.turn import AgentTurn

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def _flow() -> CallFlow:
    return CallFlow(
        FlowTiming(), t0=100.0, reprompt_line="Still there?", silent_goodbye_line="Bye."
    )


# ---- CallFlow -------------------------------------------------------------------------------
def test_greeting_waits_for_the_hello_to_end_or_a_short_silence() -> None:
    flow = _flow()
    quiet = {"speech_active": False, "words_waiting": False, "last_voiced": 0.0}
    assert not flow.greeting_due(100.5, **quiet)
    assert flow.greeting_due(101.0, **quiet)  # nobody said anything for a second
    # The callee is saying "Hello?": wait, then greet 0.7 s after it ended.
    assert not flow.greeting_due(101.5, speech_active=True, words_waiting=False, last_voiced=101.4)
    talking = {"speech_active": False, "words_waiting": False, "last_voiced": 101.4}
    assert not flow.greeting_due(101.8, **talking)
    assert flow.greeting_due(102.2, **talking)
    # Words already transcribed: greet now. Past three waits: greet regardless.
    assert flow.greeting_due(100.2, speech_active=False, words_waiting=True, last_voiced=100.1)
    assert flow.greeting_due(103.0, speech_active=True, words_waiting=False, last_voiced=102.9)


def test_silence_reprompts_then_says_goodbye() -> None:
    flow = _flow()
    flow.agent_idle(110.0)
    assert flow.tick(115.0, last_activity=105.0, words_waiting=False, stt_active=False) is None
    assert flow.tick(116.0, last_activity=105.0, words_waiting=False, stt_active=False) == SayLine(
        "reprompt", "Still there?", end_call_after=False
    )
    flow.agent_idle(120.0)
    assert flow.tick(126.0, last_activity=105.0, words_waiting=False, stt_active=False) == SayLine(
        "reprompt", "Still there?", end_call_after=False
    )
    assert not flow.gave_up_on_silence
    flow.agent_idle(130.0)
    said = flow.tick(136.0, last_activity=105.0, words_waiting=False, stt_active=False)
    assert said == SayLine("goodbye", "Bye.", end_call_after=True)
    assert flow.gave_up_on_silence  # the call's outcome will be no_response
    # The debtor answering resets the count.
    flow.debtor_spoke()
    assert flow.reprompts == 0


def test_a_closing_line_is_said_again_once_then_we_hang_up() -> None:
    flow = _flow()
    flow.closing("Goodbye.")
    flow.agent_idle(110.0)
    assert flow.tick(110.5, last_activity=100.0, words_waiting=True, stt_active=False) is None
    assert flow.tick(111.3, last_activity=100.0, words_waiting=True, stt_active=False) == SayLine(
        "closing", "Goodbye.", end_call_after=True
    )
    flow.closing("Goodbye.")
    assert flow.tick(113.0, last_activity=100.0, words_waiting=False, stt_active=False) == HangUp()


def test_waiting_words_are_answered_once_the_line_is_quiet() -> None:
    flow = _flow()
    flow.agent_idle(110.0)
    assert flow.tick(111.0, last_activity=110.5, words_waiting=True, stt_active=False) is None
    assert flow.tick(112.0, last_activity=110.5, words_waiting=True, stt_active=True) is None
    assert (
        flow.tick(112.0, last_activity=110.5, words_waiting=True, stt_active=False) == AnswerNow()
    )


# ---- Transcript -----------------------------------------------------------------------------
def test_transcript_merges_a_continued_debtor_turn_and_numbers_entries() -> None:
    t = Transcript()
    t.add_debtor("Hello?", "greeting", T0, T0 + timedelta(seconds=1), merge=True)
    i = t.add_agent(
        "Hi, this is Alex.", "greeting", T0 + timedelta(seconds=2), T0, interrupted=True
    )
    assert i == 1 and t[1].ended_at == t[1].started_at  # never ends before it starts
    t.add_debtor(
        "Yes,", "verification", T0 + timedelta(seconds=4), T0 + timedelta(seconds=5), merge=True
    )
    t.add_debtor(
        "it's me.", "verification", T0 + timedelta(seconds=6), T0 + timedelta(seconds=7), merge=True
    )
    assert [(x.index, x.speaker.value, x.text) for x in t] == [
        (0, "debtor", "Hello?"),
        (1, "agent", "Hi, this is Alex."),
        (2, "debtor", "Yes, it's me."),
    ]
    assert t[2].ended_at == T0 + timedelta(seconds=7) and t[1].interrupted
    dumped = t[2].model_dump(mode="json")
    assert dumped["state"] == "verification" and dumped["speaker"] == "debtor"


# ---- PlayoutBuffer --------------------------------------------------------------------------
def _turn(text: str) -> AgentTurn:
    turn = AgentTurn(id=1, kind="reply", context_id="c-1", timings=TurnTimings("reply", 0.0))
    turn.sentences.append(text)
    return turn


def test_a_pause_takes_back_what_twilio_had_not_played_and_a_cut_keeps_the_words_heard() -> None:
    buf = PlayoutBuffer(StereoRecorder())
    turn = _turn("one two three four")
    # 400 ms of audio, alignment: each non-space character 25 ms apart.
    turn.char_mids.extend(12.5 + 25 * i for i in range(15))
    turn.audio_ms_received = 400.0
    buf.push_audio(turn, b"\xff" * (FRAME_BYTES * 20))
    sent = buf.take_audio(turn, now_ms=1000.0, budget_bytes=FRAME_BYTES * 20)
    assert len(sent) == FRAME_BYTES * 20 and turn.playing and turn.started_stream_ms == 1000.0
    # At 1,150 ms the debtor makes a sound: 8 frames started, the other 12 come back.
    assert buf.pause(turn, 1150.0) and buf.pending_clear
    assert turn.audio_ms_sent == 160.0
    assert sum(len(i.audio or b"") for i in buf.out) == FRAME_BYTES * 12
    # Confirmed barge-in: nothing queued stays, and the words heard by 160 ms are kept.
    assert buf.cut(turn, 1160.0) == "one two"
    assert not buf.out


def test_marks_tell_how_far_the_debtor_heard() -> None:
    buf = PlayoutBuffer(StereoRecorder())
    turn = _turn("hello there")
    buf.push_audio(turn, b"\xff" * (FRAME_BYTES * 5))
    buf.push_mark(turn)
    buf.take_audio(turn, now_ms=0.0, budget_bytes=FRAME_BYTES * 5)
    item = buf.out.popleft()
    buf.mark_sent(item)
    assert buf.mark_echoed("c-1.1") is item and turn.heard_ms_by_mark == 100.0
    assert buf.mark_echoed("c-1.1") is None  # once only
    assert PlayoutBuffer.heard_ms(turn, 50.0) == 100.0  # floored by the mark


# ---- early generation -----------------------------------------------------------------------
def test_early_request_matches_only_the_same_words_after_normalising() -> None:
    history = [{"role": "system", "content": "s"}, {"role": "assistant", "content": "Hi"}]
    early = [*history, {"role": "user", "content": "Yes, it's me"}]
    assert normalise("  Yes, IT'S me!! ") == "yes it's me"
    assert same_request(early, [*history, {"role": "user", "content": "yes it's me."}])
    assert not same_request(early, [*history, {"role": "user", "content": "Yes it's me, but"}])
    changed = [{"role": "system", "content": "s2"}, history[1]]
    assert not same_request(early, [*changed, {"role": "user", "content": "Yes, it's me"}])
