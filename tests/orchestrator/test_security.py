"""Twilio webhook and media-stream signatures: forged requests never reach the call."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import websockets
from pydantic import SecretStr
from sqlalchemy import inspect, select, update
from twilio.request_validator import RequestValidator

from services.common.models import Call, CallTurn
from services.voice_orchestrator.stream_token import media_path, stream_token
from tests.orchestrator.conftest import Orch


def _params(call_sid: str, status: str) -> dict[str, str]:
    return {
        "AccountSid": "AC00000000000000000000000000000000",
        "CallSid": call_sid,
        "CallStatus": status,
        "Direction": "outbound-api",
    }


async def test_forged_status_callback_gets_403(orch: Orch) -> None:
    number = await orch.assign("busy")
    call_id, _ = await orch.new_call(number)  # dispatched, never dialled
    url = f"{orch.base_url}/twilio/status?call_id={call_id}"
    params = _params("CA" + "0" * 32, "busy")
    token = orch.settings.twilio_auth_token.get_secret_value()

    async with orch.http.post(url, data=params) as r:
        assert r.status == 403  # no signature at all
    forged = RequestValidator("some-other-token").compute_signature(url, params)
    async with orch.http.post(url, data=params, headers={"X-Twilio-Signature": forged}) as r:
        assert r.status == 403
    # A genuine signature for different parameters (replayed onto a tampered body).
    genuine = RequestValidator(token).compute_signature(url, _params("CA" + "1" * 32, "ringing"))
    async with orch.http.post(url, data=params, headers={"X-Twilio-Signature": genuine}) as r:
        assert r.status == 403
    async with orch.sessions() as s:
        assert await s.scalar(select(Call.status).where(Call.id == call_id)) == "dispatched"

    # The same request correctly signed is accepted (the call was live, so it ends busy).
    valid = RequestValidator(token).compute_signature(url, params)
    async with orch.http.post(url, data=params, headers={"X-Twilio-Signature": valid}) as r:
        assert r.status == 204
    async with orch.sessions() as s:
        assert await s.scalar(select(Call.status).where(Call.id == call_id)) == "busy"


def _signed(orch: Orch, url: str) -> dict[str, str]:
    """Headers as Twilio sends them for `url` (what a captured handshake would replay)."""
    token = orch.settings.twilio_auth_token.get_secret_value()
    return {"X-Twilio-Signature": RequestValidator(token).compute_signature(url, {})}


def _stream_url(orch: Orch, token: str) -> str:
    return orch.base_url.replace("http://", "ws://") + media_path(token)


def _start(call_id: uuid.UUID | str, call_sid: str, attempt: int | str) -> dict[str, Any]:
    sid = "MZ" + uuid.uuid4().hex
    return {
        "event": "start",
        "sequenceNumber": "1",
        "streamSid": sid,
        "start": {
            "accountSid": "AC" + "0" * 32,
            "streamSid": sid,
            "callSid": call_sid,
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "customParameters": {"call_id": str(call_id), "attempt": str(attempt)},
        },
    }


async def _close_code(url: str, headers: dict[str, str], start: dict[str, Any]) -> int | None:
    """Open a stream as Twilio would, send `connected` and `start`; the server's close code."""
    async with websockets.connect(url, additional_headers=headers) as ws:
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await ws.send(json.dumps(start))
        try:
            async with asyncio.timeout(5):
                while True:
                    await ws.recv()  # a served stream would get the agent's audio
        except websockets.ConnectionClosed:
            pass
        except TimeoutError:
            return None  # still open: served
    return ws.close_code


async def _row(orch: Orch, call_id: uuid.UUID) -> dict[str, Any]:
    async with orch.sessions() as s:
        call = await s.get(Call, call_id)
        assert call is not None
        return {c.key: getattr(call, c.key) for c in inspect(Call).column_attrs}


async def _ringing_call(orch: Orch, attempt: int = 1) -> tuple[uuid.UUID, str]:
    """A call Twilio is ringing (it has a CallSid, no media session yet)."""
    call_id, _ = await orch.new_call(await orch.assign("busy"))
    sid = "CA" + uuid.uuid4().hex
    async with orch.sessions() as s, s.begin():
        await s.execute(
            update(Call)
            .where(Call.id == call_id)
            .values(
                status="ringing",
                twilio_call_sid=sid,
                started_at=datetime.now(UTC),
                dial_started_at=datetime.now(UTC),
                dial_attempts=attempt,
            )
        )
    return call_id, sid


async def test_media_stream_handshake_needs_a_signature_and_a_token(orch: Orch) -> None:
    base = orch.base_url.replace("http://", "ws://") + "/media-stream"
    with_token = _stream_url(orch, stream_token(orch.settings, uuid.uuid4(), 1))
    for url, headers in [
        (with_token, {}),
        (with_token, {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}),
        (with_token, _signed(orch, base)),  # the old fixed URL's signature: no key any more
        (base, _signed(orch, base)),  # no token: no such endpoint
        (base + "/", _signed(orch, base + "/")),
    ]:
        with pytest.raises(websockets.InvalidStatus) as err:
            async with websockets.connect(url, additional_headers=headers):
                pass
        assert err.value.response.status_code == 403, url


async def test_a_wrong_token_or_another_calls_token_is_refused(orch: Orch) -> None:
    """Each case is a correctly signed handshake (as if replayed from Twilio) whose token was not
    issued for the call its `start` names, at its current dial: closed 1008, call untouched."""
    call_id, sid = await _ringing_call(orch, attempt=2)
    other_id, _ = await _ringing_call(orch)
    before = await _row(orch, call_id)
    own = stream_token(orch.settings, call_id, 2)
    made_up = "A" * len(own)
    wrong_key = stream_token(
        orch.settings.model_copy(update={"media_stream_token_secret": SecretStr("other")}),
        call_id,
        2,
    )
    cases = {
        "another call's token": (stream_token(orch.settings, other_id, 1), 2),
        "an earlier dial's token": (stream_token(orch.settings, call_id, 1), 1),
        "a made-up token": (made_up, 2),
        "a token under another key": (wrong_key, 2),
        "own token, start claims another attempt": (own, 3),
    }
    for case, (token, attempt) in cases.items():
        url = _stream_url(orch, token)
        code = await _close_code(url, _signed(orch, url), _start(call_id, sid, attempt))
        assert code == 1008, case
        assert await _row(orch, call_id) == before, case
    # The call's own URL, replayed with the `start` of another ringing call: refused too.
    url = _stream_url(orch, own)
    other_sid = (await _row(orch, other_id))["twilio_call_sid"]
    other_before = await _row(orch, other_id)
    assert await _close_code(url, _signed(orch, url), _start(other_id, other_sid, 1)) == 1008
    assert await _row(orch, other_id) == other_before
    # A missing attempt parameter is a bad `start`.
    bad = _start(call_id, sid, 2)
    del bad["start"]["customParameters"]["attempt"]
    assert await _close_code(url, _signed(orch, url), bad) == 1008
    assert await _row(orch, call_id) == before


def _answers_then_hangs_up() -> dict[str, Any]:
    return {
        "name": "answers_then_hangs_up",
        "answer": "answered",
        "ring_ms": 300,
        "hangup": "after_last_line",
        "hangup_delay_ms": 4000,
        "lines": [{"text": "Hello?", "after": "answer", "delay_ms": 300}],
    }


async def test_a_call_streams_once_at_its_own_url_and_a_replay_is_refused(orch: Orch) -> None:
    """End to end through the Twilio simulator: the stream URL Twilio got is the call's own;
    a second socket replaying Twilio's exact handshake and `start` is closed with 1008 while the
    call runs and after it ended, and the call completes as if nothing happened."""
    number = await orch.assign(_answers_then_hangs_up())
    call_id, data = await orch.new_call(number)
    await orch.dispatch(data)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        row = await _row(orch, call_id)
        if row["heartbeat_at"] is not None:
            break
        assert loop.time() < deadline, row["status"]
        await asyncio.sleep(0.1)
    sim = await orch.sim_call(row["twilio_call_sid"])
    [stream] = sim["streams"]
    url = stream["url"]
    token = stream_token(orch.settings, call_id, row["dial_attempts"])
    assert url == _stream_url(orch, token)  # the call's own URL, no query string
    assert stream["custom_parameters"] == {
        "call_id": str(call_id),
        "attempt": str(row["dial_attempts"]),
    }
    [start] = [m for m in stream["sent"] if m.get("event") == "start"]
    start = {k: v for k, v in start.items() if k != "at_ms"}
    replay = {"X-Twilio-Signature": stream["handshake_signature"]}

    # While Twilio's stream runs.
    assert await _close_code(url, replay, start) == 1008
    live = await _row(orch, call_id)
    assert live["status"] == "in_progress"
    assert live["twilio_call_sid"] == row["twilio_call_sid"]

    call = await orch.wait_terminal(call_id, within=60)
    # Served in full: no failure, and the debtor's "Hello?" was heard and stored.
    assert call.status == "completed" and call.failure_reason is None
    async with orch.sessions() as s:
        said = (
            await s.scalars(
                select(CallTurn.text).where(
                    CallTurn.call_id == call_id, CallTurn.speaker == "debtor"
                )
            )
        ).all()
    assert [t.strip(" .?").lower() for t in said] == ["hello"], said
    ended = await _row(orch, call_id)
    sim = await orch.sim_call(row["twilio_call_sid"])
    assert len(sim["streams"]) == 1 and sim["streams"][0]["media_messages_received"] > 0
    # After it ended.
    assert await _close_code(url, replay, start) == 1008
    await asyncio.sleep(0.3)
    assert await _row(orch, call_id) == ended
