"""A local webhook receiver for the demo and tests: records each POST and checks its signature
with the `standardwebhooks` package, as a client developer would."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from scripts.localstack import free_port


@dataclass
class ReceivedWebhook:
    headers: dict[str, str]
    body: bytes
    signature_valid: bool
    received_at: float

    @property
    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


@dataclass
class WebhookReceiver:
    port: int = field(default_factory=free_port)
    secret: str | None = None
    # Status codes to answer, in order; then 200 forever.
    script: list[int] = field(default_factory=list)
    received: list[ReceivedWebhook] = field(default_factory=list)
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhooks"

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/webhooks")
        async def receive(request: Request) -> Response:
            body = await request.body()
            headers = {k.lower(): v for k, v in request.headers.items()}
            valid = False
            if self.secret:
                try:
                    Webhook(self.secret).verify(body, headers)
                    valid = True
                except WebhookVerificationError:
                    valid = False
            self.received.append(ReceivedWebhook(headers, body, valid, time.time()))
            status = self.script.pop(0) if self.script else 200
            return Response(status_code=status)

        return app

    def start(self) -> None:
        config = uvicorn.Config(
            self._app(), host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(5)

    async def wait_for(self, count: int, timeout_s: float) -> list[ReceivedWebhook]:
        deadline = time.monotonic() + timeout_s
        # The server runs on its own thread and loop, so poll instead of sharing an asyncio.Event.
        while len(self.received) < count and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        return list(self.received)
