"""Integration fixtures: the simulators and the orchestrator (uvicorn) on free ports, on top of
the session's real PostgreSQL, Pub/Sub and GCS emulators (tests/conftest.py)."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import uvicorn
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.bus import CloudEvent, PubSubBus
from services.common.models import Call, Debtor
from services.common.settings import Settings
from services.common.topology import subscription_for
from services.voice_orchestrator.app import WS_SERVER_OPTIONS, Overrides, create_app
from services.voice_orchestrator.session import SessionTuning
from simulators import SimConfig, SimulatorStack
from tests.helpers import vendor_settings

TZ = "America/New_York"
BALANCE_MINOR = 45000
TERMINAL = ("completed", "busy", "no_answer", "failed", "canceled")

# Real-time simulators with vendor latencies close to the real ones (so the timings we store
# mean something), and the deterministic tone voice (fast, and its length is exact: 55 ms per
# character, which lets tests compare what was played with what was stored).
SIM_CONFIG = SimConfig(
    twilio_port=0,
    deepgram_port=0,
    openai_port=0,
    elevenlabs_port=0,
    speech="tone",
    ms_per_char=55.0,
    deepgram_latency_ms=50.0,
    openai_ttft_ms=450.0,
    openai_tokens_per_s=150.0,
    elevenlabs_ttfb_ms=120.0,
    elevenlabs_speed=4.0,
    elevenlabs_chunk_ms=200,
)
MS_PER_CHAR = SIM_CONFIG.ms_per_char

TUNING = SessionTuning(silence_reprompt_s=2.5, max_reprompts=1, hangup_grace_s=3.0)
OPENAI_TIMEOUT_S = 2.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Orch:
    settings: Settings
    base_url: str
    sim: SimulatorStack
    http: aiohttp.ClientSession
    sessions: async_sessionmaker[AsyncSession]
    bus: PubSubBus

    @property
    def control(self) -> str:
        assert self.sim.urls is not None
        return self.sim.urls.control

    async def assign(self, persona: str | dict[str, Any]) -> str:
        number = f"+1555{uuid.uuid4().int % 10**7:07d}"
        async with self.http.post(
            f"{self.control}/numbers", json={"number": number, "persona": persona}
        ) as resp:
            assert resp.status == 201, await resp.text()
        return number

    async def add_faults(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """Vendor faults in the simulators (`POST /_sim/faults`, see simulators/faults.py)."""
        async with self.http.post(f"{self.control}/faults", json=body) as resp:
            assert resp.status == 201, await resp.text()
            rules: list[dict[str, Any]] = (await resp.json())["rules"]
            return rules

    async def sim_records(self, what: str) -> Any:
        """`GET /_sim/<what>`: openai, deepgram, elevenlabs, faults."""
        async with self.http.get(f"{self.control}/{what}") as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()

    async def sim_call(self, sid: str, wait: float = 0) -> dict[str, Any]:
        async with self.http.get(f"{self.control}/calls/{sid}", params={"wait": str(wait)}) as r:
            assert r.status == 200, await r.text()
            data: dict[str, Any] = await r.json()
            return data

    async def sim_calls_to(self, number: str) -> list[dict[str, Any]]:
        async with self.http.get(f"{self.control}/calls") as r:
            data = await r.json()
        calls = data["calls"] if isinstance(data, dict) else data
        return [c for c in calls if c.get("to") == number]

    async def new_call(
        self, phone: str, stage: str = "early", name: str = "Jane Doe"
    ) -> tuple[uuid.UUID, dict[str, Any]]:
        """A debtor and a `dispatched` call in the DB; returns the call id and the dispatch."""
        today = datetime.now(ZoneInfo(TZ)).date()
        debtor = Debtor(
            name=name,
            phone=phone,
            timezone=TZ,
            stage=stage,
            amount_owed_minor=BALANCE_MINOR,
            currency="USD",
            due_date=today - timedelta(days=20),
            account_reference="ACC-1",
        )
        async with self.sessions() as s, s.begin():
            s.add(debtor)
            await s.flush()
            call = Call(
                debtor_id=debtor.id,
                status="dispatched",
                stage=stage,
                dispatched_at=datetime.now(UTC),
            )
            s.add(call)
            await s.flush()
            call_id = call.id
        dispatch = {
            "call_id": str(call_id),
            "debtor": {
                "debtor_id": str(debtor.id),
                "external_id": None,
                "name": debtor.name,
                "phone": phone,
                "timezone": TZ,
                "stage": stage,
                "amount_owed": {"amount_minor": BALANCE_MINOR, "currency": "USD"},
                "due_date": debtor.due_date.isoformat(),
                "account_reference": "ACC-1",
            },
            "stage": stage,
            "prompt_version": None,
            "dispatched_at": datetime.now(UTC).isoformat(),
        }
        return call_id, dispatch

    async def dispatch(self, data: dict[str, Any], ce_id: str | None = None) -> None:
        event = CloudEvent.create("call.dispatch", "/tests/call-scheduler", data)
        if ce_id is not None:
            event = CloudEvent(type=event.type, source=event.source, data=event.data, id=ce_id)
        await self.bus.publish(self.settings.pubsub_topic_call_dispatch, event)

    async def wait_terminal(self, call_id: uuid.UUID, within: float = 90.0) -> Call:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            async with self.sessions() as s:
                call = await s.scalar(select(Call).where(Call.id == call_id))
            if call is not None and call.status in TERMINAL:
                return call
            if loop.time() > deadline:
                raise TimeoutError(f"call {call_id} still {call.status if call else None}")
            await asyncio.sleep(0.25)


# Package scope: the orchestrator's call-dispatch consumer must be gone before other packages'
# tests publish dispatches of their own.
@pytest.fixture(scope="package")
async def sim() -> AsyncIterator[SimulatorStack]:
    async with SimulatorStack(SIM_CONFIG) as stack:
        yield stack


@pytest.fixture(scope="package")
async def orch(
    settings: Settings,
    sim: SimulatorStack,
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[Orch]:
    assert sim.urls is not None
    port = free_port()
    s = settings.model_copy(
        update={
            **vendor_settings(sim.urls, f"http://127.0.0.1:{port}"),
            "outbox_poll_interval_seconds": 0.1,
            # A hung LLM request is given up after 2 s (then retried by the SDK): short enough
            # for the fault tests, long against the simulator's 0.45 s time to first token.
            "openai_timeout_seconds": OPENAI_TIMEOUT_S,
        }
    )
    bus = PubSubBus(s)
    await asyncio.to_thread(_drain_dispatch_backlog, bus, s)
    app = create_app(s, Overrides(tuning=TUNING, run_sweeper=False))
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
            **WS_SERVER_OPTIONS,  # as deployed: frame size limit, no deflate
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    async with aiohttp.ClientSession() as http:
        yield Orch(s, f"http://127.0.0.1:{port}", sim, http, sessions, bus)
    server.should_exit = True
    await task
    bus.close()


def _drain_dispatch_backlog(bus: PubSubBus, settings: Settings) -> None:
    """Ack dispatches other packages' tests left on our subscription: not our calls to place."""
    sub = bus.subscription_path(
        subscription_for(settings, settings.pubsub_topic_call_dispatch).name
    )
    while True:
        resp = bus.subscriber.pull(subscription=sub, max_messages=100, timeout=2)
        if not resp.received_messages:
            return
        bus.subscriber.acknowledge(
            subscription=sub, ack_ids=[m.ack_id for m in resp.received_messages]
        )


def today_in_tz() -> date:
    return datetime.now(ZoneInfo(TZ)).date()


CallRunner = Callable[..., Any]
