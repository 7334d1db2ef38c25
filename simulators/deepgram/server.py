"""Deepgram live streaming endpoint: ``GET /v1/listen`` upgraded to a WebSocket.

Binary messages are audio; text messages are ``KeepAlive``, ``Finalize`` and ``CloseStream``.
Results go back as JSON text messages, each delayed by the configured extra latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from simulators.deepgram.transcriber import ListenOptions, OptionsError, Transcriber
from simulators.network import NETWORK_KEY

_IDLE_CLOSE_REASON = "NET-0001"  # what Deepgram sends when no audio arrived in time
_INTERNAL_ERROR_REASON = "NET-0000"  # Deepgram's own failure (a fault from /_sim/faults)


class ConnectionRecord:
    """What one /v1/listen connection received and sent (for the control API)."""

    def __init__(self, request_id: str, query: dict[str, list[str]]) -> None:
        self.request_id = request_id
        self.query = query
        self.tags = query.get("tag", [])
        self.opened_at = datetime.now(UTC)
        self.closed_at: datetime | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self.fault: int | None = None  # the /_sim/faults rule that closed this connection
        self.bytes_received = 0
        self.audio_messages = 0
        self.bytes_per_second = 8000
        self.text_received: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []

    def snapshot(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "tags": self.tags,
            "query": self.query,
            "opened_at": self.opened_at.isoformat(),
            "closed_at": self.closed_at.isoformat() if self.closed_at else None,
            "close_code": self.close_code,
            "close_reason": self.close_reason,
            "fault": self.fault,
            "audio_messages": self.audio_messages,
            "bytes_received": self.bytes_received,
            "audio_seconds": round(self.bytes_received / self.bytes_per_second, 3),
            "text_received": self.text_received,
            "sent": self.sent,
        }


def _error(status: int, message: str, request_id: str) -> web.Response:
    return web.json_response(
        {"err_code": "Bad Request", "err_msg": message, "request_id": request_id}, status=status
    )


def _auth_key(request: web.Request) -> tuple[str | None, str | None]:
    """The key from ``Authorization: Token|Bearer <key>``, or from the subprotocols
    ``Sec-WebSocket-Protocol: token, <key>`` (browsers cannot set headers)."""
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() in ("token", "bearer") and key.strip():
        return key.strip(), None
    protocols = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
    if len(protocols) >= 2 and protocols[0].lower() in ("token", "bearer"):
        return protocols[1], protocols[0]
    return None, None


async def listen(request: web.Request) -> web.StreamResponse:
    network = request.app[NETWORK_KEY]
    cfg = network.config
    request_id = str(uuid.uuid4())
    key, subprotocol = _auth_key(request)
    if key is None or (cfg.deepgram_api_key and key != cfg.deepgram_api_key):
        return web.json_response(
            {
                "err_code": "INVALID_AUTH",
                "err_msg": "Invalid credentials.",
                "request_id": request_id,
            },
            status=401,
        )
    try:
        opts = ListenOptions.from_query(request.query)
    except OptionsError as exc:
        return _error(400, str(exc), request_id)
    faults = network.faults
    tags = list(opts.tags)
    for rule in faults.candidates("deepgram", "status"):
        if network.fault_scope_matches(rule, tags) and rule.take():
            faults.log(rule, request_id=request_id, tags=tags)
            return web.json_response(
                {
                    "err_code": "SERVICE_UNAVAILABLE" if rule.value >= 500 else "Bad Request",
                    "err_msg": "The service is temporarily unavailable. Please try again.",
                    "request_id": request_id,
                },
                status=int(rule.value),
            )
    drops = [
        r
        for r in faults.candidates("deepgram", "drop_after_s", "drop_after_words")
        if network.fault_scope_matches(r, tags)
    ]
    ws = web.WebSocketResponse(
        protocols=(subprotocol,) if subprotocol else (), max_msg_size=0, autoping=True
    )
    ws.headers["dg-request-id"] = request_id
    await ws.prepare(request)

    query = {k: request.query.getall(k) for k in request.query}
    record = ConnectionRecord(request_id, query)
    record.bytes_per_second = opts.bytes_per_second
    network.records.deepgram.append(record)
    transcriber = Transcriber(opts, network, request_id, cfg.deepgram_vad_threshold)
    loop = asyncio.get_running_loop()
    latency = cfg.deepgram_latency_ms / 1000
    outbox: asyncio.Queue[tuple[float, dict[str, Any], int] | None] = asyncio.Queue()
    last_activity = loop.time()

    last_due = 0.0

    def emit(messages: list[dict[str, Any]]) -> None:
        nonlocal last_due
        # Jitter (a log-normal around the latency) never reorders: one sender, in order.
        delay = network.jittered("deepgram", latency, cfg.deepgram_latency_sigma)
        due = last_due = max(last_due, loop.time() + delay)
        for m in messages:
            outbox.put_nowait((due, m, transcriber.words_out))

    async def drop(kind: str) -> bool:
        """A fault rule of this kind fires: close the socket as Deepgram does on an error."""
        for rule in drops:
            if rule.kind == kind and rule.take():
                faults.log(rule, request_id=request_id, tags=tags, close_code=rule.close_code)
                record.close_reason = _INTERNAL_ERROR_REASON
                record.close_code = rule.close_code  # ours, whatever the client answers
                record.fault = rule.id
                await ws.close(code=rule.close_code, message=_INTERNAL_ERROR_REASON.encode())
                return True
        return False

    async def sender() -> None:
        # One sender keeps messages in order; each waits out its own due time.
        while (item := await outbox.get()) is not None:
            due, msg, words = item
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            record.sent.append(msg)
            await ws.send_str(json.dumps(msg))
            if any(r.kind == "drop_after_words" and words >= r.value for r in drops):
                if await drop("drop_after_words"):
                    return

    async def watchdog() -> None:
        while not ws.closed:
            await asyncio.sleep(0.25)
            if loop.time() - last_activity >= cfg.deepgram_idle_timeout_s:
                record.close_reason = _IDLE_CLOSE_REASON
                await ws.close(code=WSCloseCode.INTERNAL_ERROR, message=_IDLE_CLOSE_REASON.encode())
                return

    send_task = asyncio.create_task(sender())
    dog = asyncio.create_task(watchdog())
    closing = False
    try:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                record.audio_messages += 1
                record.bytes_received += len(msg.data)
                if not msg.data:  # the legacy close signal: an empty binary message
                    closing = True
                    emit(transcriber.close_stream())
                    break
                last_activity = loop.time()
                out = transcriber.feed(msg.data)
                if out:
                    emit(out)
                heard_s = record.bytes_received / record.bytes_per_second
                if any(r.kind == "drop_after_s" and heard_s >= r.value for r in drops):
                    if await drop("drop_after_s"):
                        break
            elif msg.type == WSMsgType.TEXT:
                try:
                    data = json.loads(msg.data)
                except json.JSONDecodeError:
                    data = {"type": None, "raw": msg.data}
                record.text_received.append(data)
                kind = data.get("type") if isinstance(data, dict) else None
                if kind == "KeepAlive":
                    last_activity = loop.time()
                elif kind == "Finalize":
                    last_activity = loop.time()
                    emit(transcriber.finalize())
                elif kind == "CloseStream":
                    closing = True
                    emit(transcriber.close_stream())
                    break
            else:
                break
    finally:
        outbox.put_nowait(None)
        dog.cancel()
        if closing and not ws.closed:
            # Deliver the last results and Metadata before closing, as Deepgram does.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(send_task, timeout=latency + 2.0)
            await ws.close()
        send_task.cancel()
        await asyncio.gather(send_task, dog, return_exceptions=True)
        if not ws.closed:
            await ws.close()
        record.closed_at = datetime.now(UTC)
        if record.close_code is None:
            record.close_code = ws.close_code
    return ws


def add_deepgram_routes(app: web.Application) -> None:
    app.router.add_get("/v1/listen", listen)
