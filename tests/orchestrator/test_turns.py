"""The turn-taking / barge-in policy (pure)."""

from __future__ import annotations

from services.voice_orchestrator.turns import (
    AgentPhase,
    CancelPending,
    Interrupt,
    SendFinalize,
    StartEarly,
    StartResponse,
    TurnPolicy,
    is_backchannel,
)


def speaking_agent() -> TurnPolicy:
    p = TurnPolicy(min_speech_ms=200)
    p.response_started()
    p.audio_started()
    assert p.phase is AgentPhase.SPEAKING
    return p


def test_speech_final_ends_the_debtor_turn() -> None:
    p = TurnPolicy()
    assert p.vad_start(100) == []
    assert p.stt_interim("yes") == []  # idle agent: words are just words
    assert p.stt_final("Yes, speaking.", speech_final=True, from_finalize=False) == [
        StartResponse("Yes, speaking.")
    ]
    assert p.phase is AgentPhase.THINKING


def test_is_final_pieces_are_joined_until_speech_final() -> None:
    p = TurnPolicy()
    p.vad_start(0)
    assert p.stt_final("I can't pay all of that.", False, False) == []
    assert p.stt_final("I could do 150 dollars.", True, False) == [
        StartResponse("I can't pay all of that. I could do 150 dollars.")
    ]


def test_a_pause_lets_the_reply_start_early_until_the_end_was_heard() -> None:
    p = TurnPolicy()
    p.vad_start(0)
    p.stt_interim("next friday")
    assert p.vad_pause() == [StartEarly()]
    assert p.vad_pause() == [StartEarly()]  # a second breath: the session keeps one request
    assert p.vad_end() == [SendFinalize()]
    assert p.vad_pause() == []  # after the end: the turn is the final's now


def test_local_vad_end_sends_finalize_and_its_answer_ends_the_turn() -> None:
    p = TurnPolicy()
    p.vad_start(0)
    p.stt_interim("next friday")
    assert p.vad_end() == [SendFinalize()]
    assert p.vad_end() == []  # once per utterance
    assert p.stt_final("Next Friday.", speech_final=False, from_finalize=True) == [
        StartResponse("Next Friday.")
    ]


def test_utterance_end_ends_a_turn_with_pending_words_only() -> None:
    p = TurnPolicy()
    assert p.utterance_end() == []
    p.vad_start(0)
    p.stt_final("Hello?", False, False)
    assert p.utterance_end() == []  # still speaking per local VAD
    p.user_vad = False
    assert p.utterance_end() == [StartResponse("Hello?")]


def test_gate_blocks_agent_audio_while_debtor_speaks() -> None:
    p = TurnPolicy()
    assert p.can_speak()
    p.vad_start(0)
    assert not p.can_speak()
    p.vad_end()
    assert p.can_speak()
    p.stt_interim("well")
    assert not p.can_speak()  # Deepgram still has unfinished words
    p.stt_final("well", False, False)
    assert p.can_speak()


def test_cough_does_not_interrupt_the_agent() -> None:
    p = speaking_agent()
    p.vad_start(1000)
    assert p.vad_voiced(60) == []
    assert p.vad_voiced(120) == []
    assert p.vad_end() == [SendFinalize()]
    assert p.stt_final("", False, True) == []
    assert p.phase is AgentPhase.SPEAKING


def test_backchannel_does_not_interrupt() -> None:
    p = speaking_agent()
    p.vad_start(1000)
    assert p.stt_interim("mm-hmm") == []
    assert p.stt_final("Mm-hmm.", True, False) == []
    assert p.phase is AgentPhase.SPEAKING
    assert p.pending == []


def test_sustained_speech_interrupts_with_its_onset() -> None:
    p = speaking_agent()
    p.vad_start(1500)
    assert p.vad_voiced(180) == []
    assert p.vad_voiced(200) == [Interrupt(1500, "vad")]
    assert p.vad_voiced(220) == []  # once
    assert p.phase is AgentPhase.IDLE and p.interrupted
    # The debtor's words then become the next turn.
    p.vad_end()
    assert p.stt_final("Yes, yes, this is me.", False, True) == [
        StartResponse("Yes, yes, this is me.")
    ]
    assert not p.interrupted


def test_a_transcribed_word_interrupts_before_min_speech() -> None:
    p = speaking_agent()
    p.vad_start(2000)
    p.vad_voiced(80)
    assert p.stt_interim("wait") == [Interrupt(2000, "words")]


def test_words_without_local_vad_still_interrupt() -> None:
    p = speaking_agent()  # a quiet speaker the energy VAD missed
    assert p.stt_interim("hold on") == [Interrupt(None, "words")]


def test_debtor_continuing_drops_the_pending_reply() -> None:
    p = TurnPolicy()
    p.vad_start(0)
    assert p.stt_final("Yes, that's me.", True, False) == [StartResponse("Yes, that's me.")]
    # ... and keeps talking before any reply audio went out.
    p.vad_start(900)
    assert not p.can_speak()
    assert p.vad_voiced(200) == [CancelPending("vad")]
    assert p.phase is AgentPhase.IDLE
    p.vad_end()
    assert p.stt_final("Who is this?", False, True) == [StartResponse("Who is this?")]


def test_a_dropped_reply_is_answered_even_when_no_new_words_follow() -> None:
    """A pause inside one sentence ("Yes, [pause] speaking.") finalizes early; the rest of the
    sentence drops the reply. If the last final carries no new words, the agent must still
    answer (seen with espeak voices: the call stalled with both sides waiting)."""
    p = TurnPolicy()
    p.vad_start(0)
    p.vad_end()
    assert p.stt_final("Yes, speaking.", False, True) == [StartResponse("Yes, speaking.")]
    p.vad_start(700)
    assert p.vad_voiced(240) == [CancelPending("vad")]
    assert p.vad_end() == [SendFinalize()]
    assert p.stt_final("", False, True) == [StartResponse("")]
    assert p.phase is AgentPhase.THINKING
    # Nothing left over: a later empty final does not start another reply.
    p.response_finished()
    assert p.stt_final("", True, False) == []


def test_a_dropped_reply_is_answered_after_silence_if_no_final_comes() -> None:
    p = TurnPolicy()
    p.vad_start(0)
    assert p.stt_final("Yes.", True, False) == [StartResponse("Yes.")]
    p.vad_start(500)
    assert p.vad_voiced(300) == [CancelPending("vad")]
    p.vad_end()
    assert p.silence_timeout() == [StartResponse("")]


def test_the_greeting_is_not_cancelled_by_hello() -> None:
    p = TurnPolicy()
    p.response_started(cancellable=False)
    p.vad_start(400)
    assert p.vad_voiced(400) == []
    p.vad_end()
    assert p.stt_final("Hello?", True, True) == []  # waits; the shell records it first
    assert p.pending == ["Hello?"]
    assert p.phase is AgentPhase.THINKING


def test_wordless_barge_in_resumes_after_silence() -> None:
    p = speaking_agent()
    p.vad_start(0)
    assert p.vad_voiced(300) == [Interrupt(0, "vad")]
    p.vad_end()
    p.stt_final("", False, True)
    assert p.silence_timeout() == [StartResponse("")]
    assert p.phase is AgentPhase.THINKING
    assert p.silence_timeout() == []


def test_silence_timeout_answers_pending_words_without_an_endpoint() -> None:
    p = TurnPolicy()
    p.vad_start(0)
    p.stt_final("Hello?", False, False)
    p.vad_end()
    assert p.silence_timeout() == [StartResponse("Hello?")]


def test_backchannel_words() -> None:
    assert is_backchannel("Mm-hmm.")
    assert is_backchannel("uh huh")
    assert not is_backchannel("yes")
    assert not is_backchannel("")
