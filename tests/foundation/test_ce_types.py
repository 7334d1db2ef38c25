"""Consumers handle only the CloudEvents types they declare, and their logs keep bodies out.

Against the Pub/Sub emulator and PostgreSQL: the consumer base acks (does not redeliver) and logs
a message of an undeclared `ce-type`; the Call Scheduler's and the Client API's own processes
drop such a message on each of their subscriptions without handling it (no `processed_messages`
row, which every handler of theirs writes first); a body that fails validation is logged by its
field locations and error types, never its values.
"""

from __future__ import annotations

import asyncio
import io
import json
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scripts.localstack import LocalStack
from scripts.processes import ServiceProcess
from services.call_scheduler.handlers import CallRequestHandler
from services.common.bus import CloudEvent, IdempotentHandler, PubSubBus, handled_types
from services.common.logging import configure_logging
from services.common.models import ProcessedMessage
from services.common.settings import Settings
from services.common.topology import subscriptions
from services.voice_orchestrator.dispatch import Dispatcher
from tests.helpers import drain_backlog_of, pull, temp_subscription

UNKNOWN = "com.example.not_ours"
PULL_TIMEOUT_S = 10  # PullConsumer's long poll


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """Our structured logs, as the services write them (JSON lines, redaction on)."""
    out = io.StringIO()
    configure_logging("test", "INFO", stream=out)
    yield out
    configure_logging("test", "INFO")


def events(text: str, name: str) -> list[dict[str, Any]]:
    found = []
    for line in text.splitlines():
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and data.get("event") == name:
            found.append(data)
    return found


async def _until(cond: Any, within_s: float) -> None:
    for _ in range(int(within_s / 0.05)):
        if cond():
            return
        await asyncio.sleep(0.05)


@pytest.fixture
def admin(settings: Settings) -> Iterator[PubSubBus]:
    b = PubSubBus(settings)
    yield b
    b.close()


async def test_undeclared_type_is_acked_and_logged_not_handled(
    admin: PubSubBus, settings: Settings, logs: io.StringIO
) -> None:
    topic = f"types-test-{uuid.uuid4().hex[:8]}"
    admin.publisher.create_topic(name=admin.topic_path(topic))
    sub = temp_subscription(admin, topic)  # ack deadline 10 s
    seen: list[str] = []

    async def mine(event: CloudEvent) -> None:
        seen.append(event.type)

    mine.ce_types = frozenset({"t.mine"})  # type: ignore[attr-defined]
    bus = PubSubBus(settings)
    bus.subscribe(sub, mine)
    other = CloudEvent.create(UNKNOWN, "/tests", {"x": 1})
    await admin.publish(topic, other)
    await admin.publish(topic, CloudEvent.create("t.mine", "/tests", {"x": 2}))
    await _until(lambda: seen and events(logs.getvalue(), "unknown_event_type_dropped"), 20)
    await bus.aclose()

    assert seen == ["t.mine"]
    (dropped,) = events(logs.getvalue(), "unknown_event_type_dropped")
    assert (dropped["ce_type"], dropped["ce_id"]) == (UNKNOWN, other.id)
    assert dropped["subscription"] == sub
    # Acked: once the 10 s ack deadline has passed nothing comes back.
    assert await pull(admin, sub, 1, wait_s=13) == []


async def test_validation_failure_logs_fields_not_values(
    admin: PubSubBus,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    logs: io.StringIO,
) -> None:
    topic = f"types-test-{uuid.uuid4().hex[:8]}"
    admin.publisher.create_topic(name=admin.topic_path(topic))
    sub = temp_subscription(admin, topic)
    bus = PubSubBus(settings)
    bus.subscribe(sub, IdempotentHandler("types-test", sessions, CallRequestHandler(settings)))
    secret = "Zebulon-Quixote-7731"
    await admin.publish(
        topic, CloudEvent.create("call.requested", "/tests", {"call_id": secret, "note": secret})
    )
    await _until(lambda: events(logs.getvalue(), "message_handler_failed"), 20)
    await bus.aclose()

    text = logs.getvalue()
    assert "Zebulon" not in text
    failed = events(text, "message_handler_failed")[0]
    assert failed["error"] == "ValidationError"
    assert {"loc": "call_id", "type": "uuid_parsing"} in failed["errors"]
    assert failed["ce_type"] == "call.requested"


def test_every_consumer_declares_its_types() -> None:
    """The Dispatcher's declaration (the orchestrator's one subscription); the scheduler's and
    the Client API's are exercised through their processes below."""
    assert handled_types(Dispatcher) == frozenset({"call.dispatch"})
    assert handled_types(lambda e: None) is None


@pytest.fixture(scope="module")
def services(stack: LocalStack, settings: Settings) -> Iterator[list[ServiceProcess]]:
    # Earlier tests publish on the shared topics while these consumers are not running; a
    # backlog handled first would push the test's messages past its wait.
    asyncio.run(drain_backlog_of(settings, ("call-scheduler", "client-api")))
    work = Path(tempfile.mkdtemp(prefix="ce-types-test-"))
    procs = []
    for name, module, port_var in (
        ("call-scheduler", "services.call_scheduler", "CALL_SCHEDULER_PORT"),
        ("client-api", "services.client_api", "CLIENT_API_PORT"),
    ):
        proc = ServiceProcess(name, module, env=stack.env(), log_path=work / f"{name}.log")
        proc.env[port_var] = str(proc.port)
        procs.append(proc)
    try:
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.wait_healthy(timeout=60)
        yield procs
    finally:
        for proc in procs:
            proc.stop()


async def test_services_drop_unknown_types_on_every_subscription(
    services: list[ServiceProcess],
    admin: PubSubBus,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    ours = {p.name for p in services}
    subs = [s for s in subscriptions(settings) if s.consumer in ours]
    assert {s.consumer for s in subs} == ours
    # Bodies the real handlers would accept, so only the type check can keep them out.
    sent: dict[str, CloudEvent] = {}
    for topic in {s.topic for s in subs}:
        body = {
            "call_id": str(uuid.uuid4()),
            "delivery_id": str(uuid.uuid4()),
            "endpoint_id": str(uuid.uuid4()),
            "event_id": str(uuid.uuid4()),
            "attempt": 1,
        }
        sent[topic] = CloudEvent.create(UNKNOWN, "/tests", body)
        await admin.publish(topic, sent[topic])

    def drops() -> list[dict[str, Any]]:
        lines = []
        for proc in services:
            assert proc.log_path is not None
            text = proc.log_path.read_text() if proc.log_path.exists() else ""
            lines += events(text, "unknown_event_type_dropped")
        ids = {e.id for e in sent.values()}
        return [d for d in lines if d["ce_id"] in ids]

    # Within one ack deadline plus a long poll: a pull the client gave up on (its timeout
    # racing the emulator's answer) leaves its message leased until the deadline passes.
    await _until(
        lambda: len(drops()) >= len(subs),
        settings.pubsub_ack_deadline_seconds + 2 * PULL_TIMEOUT_S,
    )
    # A nacked message would be back after the subscriptions' minimum backoff (10 s).
    await asyncio.sleep(settings.pubsub_min_backoff_seconds + 2)

    got = sorted((d["subscription"], d["ce_id"], d["ce_type"]) for d in drops())
    assert got == sorted((s.name, sent[s.topic].id, UNKNOWN) for s in subs)
    async with sessions() as s:
        ids = [e.id for e in sent.values()]
        rows = await s.scalars(select(ProcessedMessage).where(ProcessedMessage.ce_id.in_(ids)))
        assert rows.all() == []


async def test_push_endpoint_drops_unknown_types(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], logs: io.StringIO
) -> None:
    """Cloud Run mode: a pushed message of an undeclared type is acked (204) and logged, not
    handled: no `processed_messages` row for it."""
    import base64

    import httpx
    from pydantic import SecretStr

    from services.call_scheduler.app import create_app

    push = settings.model_copy(
        update={"pubsub_delivery": "push", "pubsub_push_token": SecretStr("push-secret")}
    )
    event = CloudEvent.create(UNKNOWN, "/tests", {"call_id": str(uuid.uuid4())})
    envelope = {
        "message": {
            "attributes": event.attributes(),
            "data": base64.b64encode(event.body()).decode(),
            "messageId": "1",
        },
        "subscription": "projects/p/subscriptions/call-requests.call-scheduler",
    }
    app = create_app(push)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sched") as client:
            path = "/pubsub/push/call-requests.call-scheduler?token=push-secret"
            assert (await client.post(path, json=envelope)).status_code == 204
    (dropped,) = [
        d for d in events(logs.getvalue(), "unknown_event_type_dropped") if d["ce_id"] == event.id
    ]
    assert (dropped["ce_type"], dropped["subscription"]) == (
        UNKNOWN,
        "call-requests.call-scheduler",
    )
    async with sessions() as s:
        row = await s.scalar(select(ProcessedMessage).where(ProcessedMessage.ce_id == event.id))
    assert row is None
