"""The simulators' control API (``/_sim/...`` on the Twilio port): what every simulator
received, persona assignment, and a few levers for tests (make the debtor speak or hang up,
make a vendor fail)."""

from __future__ import annotations

from collections import deque
from typing import Any

from aiohttp import web

from simulators.common.audio import wav_bytes
from simulators.faults import FaultError
from simulators.network import NETWORK_KEY, PhoneNetwork, wait_until
from simulators.personas import PersonaError
from simulators.twilio.call import SimCall
from simulators.twilio.calls import CALLS_KEY

URLS_KEY = web.AppKey("urls", dict)


def _network(request: web.Request) -> PhoneNetwork:
    return request.app[NETWORK_KEY]


def _call(request: web.Request) -> SimCall:
    call = request.app[CALLS_KEY].get(request.match_info["sid"])
    if call is None:
        raise web.HTTPNotFound(text=f"no call {request.match_info['sid']}")
    return call


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise web.HTTPBadRequest(text="expected a JSON body") from exc
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="expected a JSON object")
    return body


async def health(request: web.Request) -> web.Response:
    net = _network(request)
    return web.json_response({"ok": True, "urls": request.app[URLS_KEY], "speech": net.synth.mode})


async def personas(request: web.Request) -> web.Response:
    net = _network(request)
    return web.json_response(
        {
            "personas": [
                {
                    "name": p.name,
                    "description": p.description,
                    "number_suffix": p.number_suffix,
                    "answer": p.answer,
                    "lines": [ln.text for ln in p.lines],
                }
                for p in net.personas.values()
            ],
            "default": net.config.default_persona,
        }
    )


async def list_numbers(request: web.Request) -> web.Response:
    net = _network(request)
    return web.json_response(
        {
            "assigned": {n: a.persona.name for n, a in net.numbers.items()},
            "by_last_three_digits": net.suffix_table(),
            "default": net.config.default_persona,
        }
    )


async def assign_number(request: web.Request) -> web.Response:
    body = await _json_body(request)
    number, persona = body.get("number"), body.get("persona")
    scale = body.get("time_scale", 1.0)
    if (
        not isinstance(number, str)
        or not isinstance(persona, str | dict)
        or not isinstance(scale, int | float)
        or scale <= 0
    ):
        raise web.HTTPBadRequest(
            text='expected {"number": str, "persona": name or {...}, "time_scale"?: number > 0}'
        )
    try:
        p = _network(request).assign(number, persona, float(scale))
    except KeyError as exc:
        raise web.HTTPNotFound(text=f"unknown persona {persona!r}") from exc
    except PersonaError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from exc
    return web.json_response(
        {"number": PhoneNetwork.normalize_number(number), "persona": p.name}, status=201
    )


async def unassign_number(request: web.Request) -> web.Response:
    net = _network(request)
    net.numbers.pop(PhoneNetwork.normalize_number(request.match_info["number"]), None)
    return web.Response(status=204)


async def list_calls(request: web.Request) -> web.Response:
    return web.json_response(
        [
            {
                "sid": c.sid,
                "to": c.to,
                "persona": c.persona.name,
                "status": c.status,
                "finished": c.finished,
            }
            for c in request.app[CALLS_KEY]
        ]
    )


async def get_call(request: web.Request) -> web.Response:
    """``?wait=<seconds>`` waits for the call to finish (callbacks delivered) first."""
    call = _call(request)
    wait = float(request.query.get("wait", "0") or 0)
    if wait > 0:
        await wait_until(lambda: call.finished, within=wait)
    return web.json_response(call.snapshot())


async def call_audio(request: web.Request) -> web.Response:
    """The call as heard: ``?track=stereo`` (debtor left, agent right), ``agent`` or ``debtor``;
    ``?format=wav`` (PCM16) or ``ulaw`` (raw bytes, one track)."""
    call = _call(request)
    stream = call.stream
    if stream is None:
        raise web.HTTPNotFound(text="this call had no media stream")
    track = request.query.get("track", "stereo")
    fmt = request.query.get("format", "wav")
    if track not in ("stereo", "agent", "debtor") or fmt not in ("wav", "ulaw"):
        raise web.HTTPBadRequest(text="track: stereo|agent|debtor, format: wav|ulaw")
    if fmt == "ulaw":
        if track == "stereo":
            raise web.HTTPBadRequest(text="raw μ-law is one track: agent or debtor")
        return web.Response(body=stream.track(track), content_type="audio/basic")
    tracks = (
        [stream.track("debtor"), stream.track("agent")]
        if track == "stereo"
        else [stream.track(track)]
    )
    return web.Response(body=wav_bytes(tracks), content_type="audio/wav")


async def call_say(request: web.Request) -> web.Response:
    call = _call(request)
    text = (await _json_body(request)).get("text")
    if not isinstance(text, str) or not text.strip():
        raise web.HTTPBadRequest(text='expected {"text": "..."}')
    if call.stream is None or call.stream.stop_reason is not None:
        raise web.HTTPConflict(text="the call has no live media stream")
    await call.stream.say(text)
    return web.json_response({"queued": text}, status=202)


async def call_hangup(request: web.Request) -> web.Response:
    """The debtor hangs up now (the stream stops as if the persona ended the call)."""
    call = _call(request)
    if call.stream is not None and call.stream.stop_reason is None:
        call.stream.runtime.hangup = True
        call.stream.runtime.hangup_reason = "control"
    else:
        call.request_hangup()
    return web.json_response({"sid": call.sid}, status=202)


def _records(items: deque[Any], **filters: str) -> list[dict[str, Any]]:
    out = []
    for rec in items:
        snap = rec.snapshot() if hasattr(rec, "snapshot") else rec
        if all(not v or v in (snap.get(k) or ()) for k, v in filters.items()):
            out.append(snap)
    return out


async def deepgram_records(request: web.Request) -> web.Response:
    tag = request.query.get("tag", "")
    return web.json_response(_records(_network(request).records.deepgram, tags=tag))


async def add_transcripts(request: web.Request) -> web.Response:
    """Words for Deepgram connections whose ``tag`` is not a simulated call."""
    body = await _json_body(request)
    tag, texts = body.get("tag"), body.get("texts")
    if not isinstance(tag, str) or not isinstance(texts, list):
        raise web.HTTPBadRequest(text='expected {"tag": str, "texts": [str, ...]}')
    _network(request).transcripts.setdefault(tag, deque()).extend(str(t) for t in texts)
    return web.json_response({"tag": tag, "queued": len(texts)}, status=201)


async def elevenlabs_records(request: web.Request) -> web.Response:
    return web.json_response(_records(_network(request).records.elevenlabs))


async def openai_records(request: web.Request) -> web.Response:
    return web.json_response(list(_network(request).records.openai))


async def add_faults(request: web.Request) -> web.Response:
    """``{"openai": {...} | [...], "deepgram": ..., "elevenlabs": ...}`` (simulators/faults.py)."""
    try:
        body = await request.json()
    except ValueError as exc:
        raise web.HTTPBadRequest(text="expected a JSON body") from exc
    try:
        rules = _network(request).faults.add(body, PhoneNetwork.normalize_number)
    except FaultError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from exc
    return web.json_response({"rules": [r.snapshot() for r in rules]}, status=201)


async def list_faults(request: web.Request) -> web.Response:
    return web.json_response(_network(request).faults.snapshot())


async def clear_faults(request: web.Request) -> web.Response:
    _network(request).faults.clear()
    return web.Response(status=204)


async def reset(request: web.Request) -> web.Response:
    """Forget finished calls, all records and faults (live calls keep running)."""
    request.app[CALLS_KEY].forget_finished()
    _network(request).reset()
    return web.Response(status=204)


def add_control_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/_sim/health", health)
    r.add_get("/_sim/personas", personas)
    r.add_get("/_sim/numbers", list_numbers)
    r.add_post("/_sim/numbers", assign_number)
    r.add_delete("/_sim/numbers/{number}", unassign_number)
    r.add_get("/_sim/calls", list_calls)
    r.add_get("/_sim/calls/{sid}", get_call)
    r.add_get("/_sim/calls/{sid}/audio", call_audio)
    r.add_post("/_sim/calls/{sid}/say", call_say)
    r.add_post("/_sim/calls/{sid}/hangup", call_hangup)
    r.add_get("/_sim/deepgram", deepgram_records)
    r.add_post("/_sim/transcripts", add_transcripts)
    r.add_get("/_sim/elevenlabs", elevenlabs_records)
    r.add_get("/_sim/openai", openai_records)
    r.add_post("/_sim/faults", add_faults)
    r.add_get("/_sim/faults", list_faults)
    r.add_delete("/_sim/faults", clear_faults)
    r.add_post("/_sim/reset", reset)
