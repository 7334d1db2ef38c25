"""Twilio webhook and media-stream signatures: forged requests never reach the call."""

from __future__ import annotations

import json
import uuid

import pytest
import websockets
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from services.common.models import Call
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


async def test_media_stream_handshake_needs_a_valid_signature(orch: Orch) -> None:
    ws_url = orch.base_url.replace("http://", "ws://") + "/media-stream"
    for headers in ({}, {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}):
        with pytest.raises(websockets.InvalidStatus) as err:
            async with websockets.connect(ws_url, additional_headers=headers):
                pass
        assert err.value.response.status_code == 403


async def test_signed_stream_for_an_unknown_call_is_closed(orch: Orch) -> None:
    ws_url = orch.base_url.replace("http://", "ws://") + "/media-stream"
    token = orch.settings.twilio_auth_token.get_secret_value()
    sig = RequestValidator(token).compute_signature(ws_url, {})
    async with websockets.connect(ws_url, additional_headers={"X-Twilio-Signature": sig}) as ws:
        await ws.send(json.dumps({"event": "connected", "protocol": "Call"}))
        await ws.send(
            json.dumps(
                {
                    "event": "start",
                    "streamSid": "MZ" + "0" * 32,
                    "start": {
                        "streamSid": "MZ" + "0" * 32,
                        "callSid": "CA" + "0" * 32,
                        "customParameters": {"call_id": str(uuid.uuid4())},
                    },
                }
            )
        )
        with pytest.raises(websockets.ConnectionClosed):
            for _ in range(50):
                await ws.recv()
