"""Answering-machine detection end to end: Twilio simulator (AMD verdicts, personas) → signed
AMD callback → the live session's voicemail gate → outcome, recording, transcript, call.completed.

Two orchestrators of their own (VOICEMAIL_MODE=message and =hangup), each with the AMD plan in
its session tuning as `default_tuning` builds it; calls are placed through the real Dispatcher
(no Pub/Sub consumer, so the package's orchestrator keeps the dispatch subscription).
"""

from __future__ import annotations

import asyncio
import io
import json
import uuid
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
import numpy as np
import pytest
import uvicorn
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from twilio.request_validator import RequestValidator

from generated.call_dispatch import CallDispatch
from services.common.blobstore import GcsBlobStore
from services.common.bus import PubSubBus
from services.common.models import Call, CallTurn, OutboxMessage
from services.common.settings import Settings
from services.voice_orchestrator.app import WS_SERVER_OPTIONS, Overrides, create_app
from services.voice_orchestrator.conversation.speech import spoken_amount
from services.voice_orchestrator.dispatch import Dispatcher
from services.voice_orchestrator.finalize import recording_key, transcript_key
from services.voice_orchestrator.session.voicemail import plan_from_settings
from simulators import SimulatorStack
from tests.helpers import vendor_settings
from tests.orchestrator.conftest import BALANCE_MINOR, MS_PER_CHAR, TUNING, Orch, free_port

DISCLOSURE = "This is an attempt to collect a debt"
# Words that would reveal the debt (or that we collect debts) to whoever hears the message.
DEBT_WORDS = (
    "debt",
    "collect",
    "balance",
    "owe",
    "payment",
    "due",
    spoken_amount(BALANCE_MINOR, "USD"),
)

# Short scripts (the calls run at once; the longest sets the module's time): once the disclosure
# has started she cuts in and hangs up, so a verified call ends `refused`.
_GONE = {"text": "Sorry, I have to go.", "after": "agent_start", "delay_ms": 3000}
HUMAN = {
    "name": "human_short",
    "ring_ms": 800,
    "hangup": "after_last_line",
    "hangup_delay_ms": 200,
    "lines": [
        {"text": "Hello?", "after": "answer", "delay_ms": 400},
        {"text": "Yes, speaking.", "delay_ms": 600},
        _GONE,
    ],
}
# simulators/personas/sounds_like_machine.yaml without the promise.
SOUNDS_LIKE_MACHINE = {
    **HUMAN,
    "name": "sounds_like_machine_short",
    "amd": {"answered_by": "human", "after_line": 1, "delay_ms": 2500},
    "lines": [
        {"text": "Hello, this is Jordan speaking, how can I help you?", "after": "answer"},
        {"text": "Yes, speaking.", "delay_ms": 600},
        _GONE,
    ],
}
# Like sounds_like_machine, but Twilio cannot tell (AnsweredBy=unknown) after her second line.
UNSURE_PERSON = {
    "name": "unsure_person",
    "ring_ms": 1000,
    "hangup": "after_agent_done",
    "amd": {"answered_by": "unknown", "after_line": 1, "delay_ms": 1500},
    "lines": [
        {"text": "Hello, this is Jordan speaking, how can I help you?", "after": "answer"},
        {"text": "Yes, speaking.", "delay_ms": 600},
        {"text": "Oh, right. Yes, I can pay the full amount today.", "delay_ms": 800},
    ],
}


async def _start(
    settings: Settings, sim: SimulatorStack, mode: str
) -> tuple[Orch, Dispatcher, uvicorn.Server, asyncio.Task[None], PubSubBus]:
    assert sim.urls is not None
    port = free_port()
    s = settings.model_copy(
        update={
            **vendor_settings(sim.urls, f"http://127.0.0.1:{port}"),
            "outbox_poll_interval_seconds": 0.1,
            "voicemail_mode": mode,
        }
    )
    tuning = replace(TUNING, voicemail=plan_from_settings(s))
    app = create_app(s, Overrides(tuning=tuning, run_consumer=False, run_sweeper=False))
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
            **WS_SERVER_OPTIONS,
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    o = app.state.orch
    dispatcher = Dispatcher(
        s, o.telephony, o.cache, o.sessions, on_dialing=o.prepare_call, on_not_placed=o.release_call
    )
    bus = PubSubBus(s)
    return (
        Orch(s, f"http://127.0.0.1:{port}", sim, aiohttp.ClientSession(), o.sessions, bus),
        dispatcher,
        server,
        task,
        bus,
    )


@dataclass
class Run:
    call: Call
    turns: list[CallTurn]
    events: list[OutboxMessage]
    sim: dict[str, Any]
    wav: bytes
    transcript: dict[str, Any]

    @property
    def stream(self) -> dict[str, Any]:
        return dict(self.sim["streams"][-1])

    @property
    def agent_text(self) -> str:
        return " ".join(t.text for t in self.turns if t.speaker == "agent")

    def amd_callback(self) -> dict[str, Any]:
        (cb,) = [c for c in self.sim["status_callbacks"] if c["event"] == "amd"]
        return dict(cb)


async def _place(o: Orch, d: Dispatcher, persona: str | dict[str, Any]) -> Run:
    number = await o.assign(persona)
    call_id, data = await o.new_call(number, name="Jane Doe")
    assert await d.dial(CallDispatch.model_validate(data))
    call = await o.wait_terminal(call_id, within=60)
    await asyncio.sleep(0.3)  # the AMD callback's row update, the simulator's last records
    async with o.sessions() as s:
        call = await s.scalar(select(Call).where(Call.id == call_id))
        assert call is not None
        turns = list(
            (
                await s.scalars(
                    select(CallTurn).where(CallTurn.call_id == call_id).order_by(CallTurn.index)
                )
            ).all()
        )
        events = list(
            (
                await s.scalars(
                    select(OutboxMessage).where(
                        OutboxMessage.ce_type == "call.completed",
                        OutboxMessage.payload["call"]["id"].astext == str(call_id),
                    )
                )
            ).all()
        )
    assert call.twilio_call_sid
    sim = await o.sim_call(call.twilio_call_sid, wait=10)
    store = GcsBlobStore(o.settings)
    wav = await store.get(recording_key(str(call_id)))
    transcript = json.loads(await store.get(transcript_key(str(call_id))))
    return Run(call, turns, events, sim, wav, transcript)


MESSAGE_RUNS = {
    "voicemail": "voicemail",
    "mailbox_full": "mailbox_full",
    "fax": "fax",
    "human": HUMAN,
    "sounds_like_machine": SOUNDS_LIKE_MACHINE,
    "unsure_person": UNSURE_PERSON,
}


@pytest.fixture(scope="module")
async def amd(
    settings: Settings, sim: SimulatorStack, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[dict[str, Any]]:
    started = [await _start(settings, sim, "message"), await _start(settings, sim, "hangup")]
    (msg, msg_d, *_), (hang, hang_d, *_) = started
    try:
        names = list(MESSAGE_RUNS)
        results = await asyncio.gather(
            *(_place(msg, msg_d, MESSAGE_RUNS[n]) for n in names),
            _place(hang, hang_d, "voicemail"),
        )
        runs = dict(zip([*names, "voicemail_hangup"], results, strict=True))
        yield {"runs": runs, "orch": msg}
    finally:
        for o, _, server, task, bus in started:
            server.should_exit = True
            await task
            await o.http.close()
            bus.close()


def _runs(amd: dict[str, Any]) -> dict[str, Run]:
    runs: dict[str, Run] = amd["runs"]
    return runs


@pytest.mark.parametrize(
    ("name", "outcome", "answered_by"),
    [
        ("voicemail", "voicemail_left", "machine_end_beep"),
        ("voicemail_hangup", "machine", "machine_end_beep"),
        ("mailbox_full", "machine", "machine_end_other"),  # it hung up on the message
        ("fax", "machine", "fax"),
        ("human", "hung_up", "human"),  # verified, heard the disclosure, hung up
        ("sounds_like_machine", "hung_up", "human"),
        ("unsure_person", "machine", "unknown"),
    ],
)
async def test_outcome_and_answered_by(
    amd: dict[str, Any], name: str, outcome: str, answered_by: str
) -> None:
    run = _runs(amd)[name]
    assert (run.call.status, run.call.outcome) == ("completed", outcome), run.agent_text
    assert run.call.answered_by == answered_by
    # The call.completed webhook carries both, like the call view.
    (event,) = run.events
    assert event.payload["call"]["outcome"] == outcome
    assert event.payload["call"]["answered_by"] == answered_by
    assert run.transcript["outcome"] == outcome


async def test_the_amd_callback_was_signed_and_accepted(amd: dict[str, Any]) -> None:
    for run in _runs(amd).values():
        cb = run.amd_callback()
        assert cb["response_status"] == 204, cb
        assert set(cb["params"]) == {
            "AccountSid",
            "CallSid",
            "AnsweredBy",
            "MachineDetectionDuration",
        }


async def test_voicemail_message_is_left_after_the_beep_and_recorded(amd: dict[str, Any]) -> None:
    run = _runs(amd)["voicemail"]
    plan = plan_from_settings(run_settings(amd))
    assert plan is not None
    # In the transcript, in full, as the agent's last turn; nothing about the debt anywhere.
    agent = [t for t in run.turns if t.speaker == "agent"]
    assert agent[-1].text == plan.message and not agent[-1].interrupted
    spoken = run.agent_text.lower()
    for word in DEBT_WORDS:
        assert word.lower() not in spoken, word
    # What the phone played after the beep ended is the message: all of it, none of it before.
    beep = next(ln for ln in run.stream["debtor_lines"] if ln["text"] == "[beep]")
    after = [s for s in run.stream["agent_audio"] if s["start_ms"] >= beep["end_ms"]]
    played_ms = sum(s["end_ms"] - s["start_ms"] for s in after)
    assert played_ms >= 0.9 * len(plan.message) * MS_PER_CHAR, after
    # And the recording has it on the agent channel, where the phone played it.
    with wave.open(io.BytesIO(run.wav)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    a, b = after[0]["start_ms"] + 150, after[-1]["end_ms"] - 150
    seg = pcm[int(a * 8) : int(b * 8), 1].astype(np.float64)
    assert float(np.sqrt((seg**2).mean())) > 500


def run_settings(amd: dict[str, Any]) -> Settings:
    orch: Orch = amd["orch"]
    return orch.settings


async def test_machines_never_hear_the_model_or_the_debt(amd: dict[str, Any]) -> None:
    runs = _runs(amd)
    for name in ("voicemail", "voicemail_hangup", "mailbox_full", "fax", "unsure_person"):
        run = runs[name]
        spoken = run.agent_text.lower()
        assert DISCLOSURE.lower() not in spoken, name
        for word in DEBT_WORDS:
            assert word.lower() not in spoken, (name, word)
        # The held reply was never asked for: only the greeting (and the message) were said.
        assert all(rec["kind"] in ("greeting", "voicemail", "closing") for rec in run.call.latency)
    # Hang-up mode and the fax: nothing after the machine's verdict.
    for name in ("voicemail_hangup", "fax"):
        run = runs[name]
        verdict_ms = int(run.amd_callback()["params"]["MachineDetectionDuration"])
        assert all(s["start_ms"] < verdict_ms for s in run.stream["agent_audio"]), name


async def test_a_person_who_sounds_like_a_machine_hears_nothing_before_the_verdict(
    amd: dict[str, Any],
) -> None:
    run = _runs(amd)["sounds_like_machine"]
    lines = run.stream["debtor_lines"]
    confirmed = next(ln for ln in lines if ln["text"] == "Yes, speaking.")
    verdict_ms = int(run.amd_callback()["params"]["MachineDetectionDuration"])
    assert verdict_ms >= confirmed["end_ms"] + 2000  # the verdict came late...
    # ...and the agent waited for it: nothing played between her "Yes" and the verdict.
    for seg in run.stream["agent_audio"]:
        assert not confirmed["end_ms"] <= seg["start_ms"] < verdict_ms, seg
    # Then the call went on as any: the disclosure, heard in full.
    assert DISCLOSURE in run.agent_text


async def test_a_human_answer_is_a_normal_call(amd: dict[str, Any]) -> None:
    run = _runs(amd)["human"]
    assert DISCLOSURE in run.agent_text
    assert "voicemail" not in {rec["kind"] for rec in run.call.latency}
    # The verdict came while the greeting played: no reply waited for it.
    verdict_ms = int(run.amd_callback()["params"]["MachineDetectionDuration"])
    first_reply = run.stream["debtor_lines"][1]
    assert verdict_ms < first_reply["start_ms"]


async def test_unsigned_or_forged_amd_callback_gets_403(amd: dict[str, Any]) -> None:
    orch: Orch = amd["orch"]
    run = _runs(amd)["human"]
    url = f"{orch.base_url}/twilio/amd?call_id={run.call.id}"
    params = {
        "AccountSid": orch.settings.twilio_account_sid,
        "CallSid": run.call.twilio_call_sid or "",
        "AnsweredBy": "machine_end_beep",
        "MachineDetectionDuration": "4000",
    }
    async with orch.http.post(url, data=params) as r:
        assert r.status == 403
    forged = RequestValidator("not-our-token").compute_signature(url, params)
    async with orch.http.post(url, data=params, headers={"X-Twilio-Signature": forged}) as r:
        assert r.status == 403
    async with orch.sessions() as s:
        assert await s.scalar(select(Call.answered_by).where(Call.id == run.call.id)) == "human"
    # Signed, for a call id we do not know: accepted (Twilio would retry a 4xx), nothing stored.
    other = f"{orch.base_url}/twilio/amd?call_id={uuid.uuid4()}"
    token = orch.settings.twilio_auth_token.get_secret_value()
    sig = RequestValidator(token).compute_signature(other, params)
    async with orch.http.post(other, data=params, headers={"X-Twilio-Signature": sig}) as r:
        assert r.status == 204
