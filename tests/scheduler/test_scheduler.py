"""Call Scheduler against PostgreSQL and the Pub/Sub emulator: one dispatch per call, whatever
is redelivered."""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from generated.call_dispatch import CallDispatch
from generated.call_requested import CallRequested
from scripts.localstack import LocalStack
from scripts.processes import ServiceProcess
from services.call_scheduler.app import create_app
from services.call_scheduler.decide import ClaimView, Dispatch, Reschedule, Skip, decide_claim
from services.common.bus import CloudEvent, PubSubBus
from services.common.calling_rules import Allowed, Refused
from services.common.models import Call, Debtor
from services.common.settings import Settings
from services.voice_orchestrator.conversation import DelinquencyStage, default_prompt_set
from tests.helpers import insert_call, pull, temp_subscription


@pytest.fixture(scope="module")
def scheduler(stack: LocalStack) -> Iterator[ServiceProcess]:
    """The scheduler as its own process, as deployed: restarting a streaming-pull consumer
    inside one process can strand messages at the emulator for a lease period."""
    proc = ServiceProcess(
        "call-scheduler",
        "services.call_scheduler",
        env=stack.env(),
        log_path=Path(tempfile.mkdtemp(prefix="scheduler-test-")) / "scheduler.log",
    )
    proc.env["CALL_SCHEDULER_PORT"] = str(proc.port)
    proc.start()
    proc.wait_healthy(timeout=60)
    yield proc
    proc.stop()


async def dispatches_of(
    bus: PubSubBus, subscription: str, call_id: uuid.UUID, wait_s: float
) -> list[Any]:
    """The dispatch messages for one call. Other tests' calls share the topic (and a scheduler
    may first work through their backlog), so wait for this call's dispatch, then a little
    longer to catch a duplicate."""
    mine: list[Any] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while loop.time() < deadline:
        for m in await pull(bus, subscription, 1, wait_s=1.0):
            body = CloudEvent.from_message(dict(m.message.attributes), m.message.data).data
            if body.get("call_id") == str(call_id):
                mine.append(m)
                deadline = min(deadline, loop.time() + 3.0)
    return mine


def test_claim_decision_places_only_what_holds_and_rules_allow() -> None:
    now = datetime.now(UTC)
    base = ClaimView(
        reason="manual",
        call_status="queued",
        has_call=True,
        debtor_exists=True,
        holds=(),
        other_live_call=False,
        verdict=Allowed(now),
        now=now,
    )

    def with_(**kw: Any) -> ClaimView:
        return ClaimView(**(base.__dict__ | kw))

    assert decide_claim(base) == Dispatch()
    assert decide_claim(with_(call_status="dispatched")) == Skip(
        "call is dispatched, not queued", False
    )
    assert decide_claim(with_(call_status=None)) == Skip("unknown call", False)
    assert decide_claim(with_(debtor_exists=False, verdict=None)) == Skip("unknown debtor", True)
    assert decide_claim(with_(holds=("opt_out",))) == Skip("debtor on hold: opt_out", True)
    later = now + timedelta(hours=3)
    assert decide_claim(with_(verdict=Allowed(later))) == Reschedule(later)
    assert decide_claim(with_(verdict=Refused("7 calls in 7 days"))) == Skip(
        "calling rules: 7 calls in 7 days", True
    )
    retry = with_(reason="retry", call_status=None, has_call=False, other_live_call=True)
    assert isinstance(decide_claim(retry), Skip)
    # The call's `skipped` step gets the reason as a CallStepReason (docs/call-events.md).
    codes = {
        "unknown_debtor": with_(debtor_exists=False, verdict=None),
        "debtor_on_hold": with_(holds=("opt_out",)),
        "calling_rules": with_(verdict=Refused("7 calls in 7 days")),
        "superseded": retry,
    }
    for code, view in codes.items():
        decision = decide_claim(view)
        assert isinstance(decision, Skip) and decision.code == code, (code, decision)
    assert decide_claim(with_(call_status="dispatched")).code is None  # type: ignore[union-attr]
    # A hold wins over everything the rules would allow.
    assert isinstance(decide_claim(with_(holds=("dispute",), verdict=Allowed(later))), Skip)


async def _queued_call(sessions: async_sessionmaker[AsyncSession]) -> tuple[Debtor, Call]:
    return await insert_call(
        sessions,
        "queued",
        name="Sched Test",
        phone="+15550100042",
        timezone="America/Chicago",
        stage="late",
        amount_owed_minor=123456,
        due_date=date(2026, 10, 1),
        account_reference="ACC-42",
    )


async def test_redelivered_requests_dispatch_once(
    scheduler: ServiceProcess, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    bus = PubSubBus(settings)
    dispatch_sub = temp_subscription(bus, settings.pubsub_topic_call_dispatch)
    debtor, call = await _queued_call(sessions)
    request = CallRequested(
        call_id=call.id, debtor_id=debtor.id, requested_at=datetime.now(UTC), idempotency_key=None
    )
    event = CloudEvent.create("call.requested", "/tests", request)
    for _ in range(3):  # the same message redelivered
        await bus.publish(settings.pubsub_topic_call_requests, event)
    # ... and a second request for the same call under another ce-id
    await bus.publish(
        settings.pubsub_topic_call_requests, CloudEvent.create("call.requested", "/t", request)
    )
    msgs = await dispatches_of(bus, dispatch_sub, call.id, wait_s=45)
    bus.close()

    dispatches = [
        CallDispatch.model_validate(
            CloudEvent.from_message(dict(m.message.attributes), m.message.data).data
        )
        for m in msgs
    ]
    assert [d.call_id for d in dispatches] == [call.id]
    [d] = dispatches
    assert d.debtor.debtor_id == debtor.id
    assert d.debtor.amount_owed.amount_minor == 123456
    assert d.stage.value == "late"
    # The dispatch pins the same prompt version the conversation core will record.
    assert d.prompt_version == default_prompt_set().version(DelinquencyStage("late"))
    assert msgs[0].message.attributes["ce-type"] == "call.dispatch"
    async with sessions() as s:
        row = await s.get(Call, call.id)
        assert row is not None and row.status == "dispatched" and row.dispatched_at is not None


async def test_unknown_call_dispatches_nothing(
    scheduler: ServiceProcess, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    unknown_id = uuid.uuid4()
    bus = PubSubBus(settings)
    dispatch_sub = temp_subscription(bus, settings.pubsub_topic_call_dispatch)
    await bus.publish(
        settings.pubsub_topic_call_requests,
        CloudEvent.create(
            "call.requested",
            "/tests",
            CallRequested(
                call_id=uuid.uuid4(),
                debtor_id=uuid.uuid4(),
                requested_at=datetime.now(UTC),
                idempotency_key=None,
            ),
        ),
    )
    msgs = await dispatches_of(bus, dispatch_sub, unknown_id, wait_s=4)
    bus.close()
    assert msgs == []


async def test_push_delivery_dispatches_and_checks_token(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Cloud Run mode: Pub/Sub pushes the message; a wrong token is refused, the right one runs
    the same idempotent handler."""
    import base64

    import httpx

    push_settings = settings.model_copy(
        update={"pubsub_delivery": "push", "pubsub_push_token": SecretStr("push-secret")}
    )
    bus = PubSubBus(settings)
    dispatch_sub = temp_subscription(bus, settings.pubsub_topic_call_dispatch)
    debtor, call = await _queued_call(sessions)
    event = CloudEvent.create(
        "call.requested",
        "/tests",
        CallRequested(
            call_id=call.id,
            debtor_id=debtor.id,
            requested_at=datetime.now(UTC),
            idempotency_key=None,
        ),
    )
    envelope = {
        "message": {
            "attributes": event.attributes(),
            "data": base64.b64encode(event.body()).decode(),
            "messageId": "1",
        },
        "subscription": "projects/p/subscriptions/call-requests.call-scheduler",
    }
    app = create_app(push_settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sched") as client:
            path = "/pubsub/push/call-requests.call-scheduler"
            forged = await client.post(path + "?token=wrong", json=envelope)
            assert forged.status_code == 403
            for _ in range(2):  # pushed twice
                ok = await client.post(path + "?token=push-secret", json=envelope)
                assert ok.status_code == 204
            malformed = await client.post(path + "?token=push-secret", json={"message": {}})
            assert malformed.status_code == 204  # acked, never retried forever
        msgs = await dispatches_of(bus, dispatch_sub, call.id, wait_s=15)
    bus.close()
    assert len(msgs) == 1
