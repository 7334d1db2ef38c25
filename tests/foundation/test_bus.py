"""The Pub/Sub bus, the idempotent consumer and the outbox, against the emulator and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.bus import CloudEvent, IdempotentHandler, PubSubBus
from services.common.models import OutboxMessage, ProcessedMessage
from services.common.outbox import OutboxRelay, add_event
from services.common.settings import Settings
from tests.helpers import pull, sample_debtor, temp_subscription


@pytest.fixture(scope="module")
def bus(settings: Settings) -> PubSubBus:
    b = PubSubBus(settings)
    yield b
    b.close()


def fresh_topic(bus: PubSubBus) -> str:
    """A topic of its own per test: made-up bodies on the real topics would reach the services
    that later tests start."""
    topic = f"test-topic-{uuid.uuid4().hex[:8]}"
    bus.publisher.create_topic(name=bus.topic_path(topic))
    return topic


async def test_publish_carries_cloudevent_attributes(bus: PubSubBus, settings: Settings) -> None:
    topic = fresh_topic(bus)
    sub = temp_subscription(bus, topic)
    event = CloudEvent.create("call.requested", "/tests", {"call_id": "c1"})
    await bus.publish(topic, event)
    [msg] = await pull(bus, sub, 1)
    attrs = dict(msg.message.attributes)
    assert attrs["ce-id"] == event.id
    assert attrs["ce-type"] == "call.requested"
    assert attrs["ce-source"] == "/tests"
    assert attrs["ce-specversion"] == "1.0"
    assert "ce-time" in attrs
    assert CloudEvent.from_message(attrs, msg.message.data).data == {"call_id": "c1"}


async def test_duplicate_delivery_changes_database_once(
    bus: PubSubBus, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions() as s, s.begin():
        await s.execute(text("CREATE TABLE IF NOT EXISTS bus_test_effects (ce_id text, n int)"))
    topic = fresh_topic(bus)
    sub = temp_subscription(bus, topic)
    handled = asyncio.Event()
    calls = 0
    fail_first = True

    async def effect(session: AsyncSession, event: CloudEvent) -> None:
        nonlocal calls, fail_first
        calls += 1
        await session.execute(
            text("INSERT INTO bus_test_effects VALUES (:id, :n)"),
            {"id": event.id, "n": event.data["n"]},
        )
        if fail_first:
            # The first attempt fails after writing: its write must roll back and it is redelivered.
            fail_first = False
            raise RuntimeError("transient")
        handled.set()

    consumer = f"test-consumer-{uuid.uuid4().hex[:6]}"
    bus.subscribe(sub, IdempotentHandler(consumer, sessions, effect))
    event = CloudEvent.create("call.completed", "/tests", {"n": 7})
    for _ in range(3):  # the same ce-id three times
        await bus.publish(topic, event)
    await asyncio.wait_for(handled.wait(), 15)
    await asyncio.sleep(1.0)  # let the remaining duplicates arrive and be skipped

    async with sessions() as s:
        effects = await s.scalar(
            text("SELECT count(*) FROM bus_test_effects WHERE ce_id = :id"), {"id": event.id}
        )
        processed = await s.scalar(
            select(func.count())
            .select_from(ProcessedMessage)
            .where(ProcessedMessage.consumer == consumer, ProcessedMessage.ce_id == event.id)
        )
    assert effects == 1
    assert processed == 1
    assert calls >= 2  # failed once, then succeeded; duplicates never reached the handler body


async def test_outbox_publishes_committed_and_never_rolled_back(
    bus: PubSubBus, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    topic = fresh_topic(bus)
    sub = temp_subscription(bus, topic)

    async with sessions() as s, s.begin():
        s.add(sample_debtor())
        committed = add_event(s, topic, "webhook.delivery_requested", "/tests", {"k": "committed"})

    s2 = sessions()
    async with s2:
        await s2.begin()
        s2.add(sample_debtor())
        rolled_back = add_event(s2, topic, "webhook.delivery_requested", "/tests", {"k": "rb"})
        await s2.flush()
        await s2.rollback()

    relay = OutboxRelay(sessions, bus)
    while await relay.publish_pending():
        pass
    msgs = await pull(bus, sub, 1, wait_s=5)
    ids = [m.message.attributes["ce-id"] for m in msgs]
    assert committed.id in ids
    assert rolled_back.id not in ids
    # Extra pulls: the rolled-back event never shows up later either.
    ids += [m.message.attributes["ce-id"] for m in await pull(bus, sub, 1, wait_s=2)]
    assert rolled_back.id not in ids
    async with sessions() as s:
        row = await s.scalar(select(OutboxMessage).where(OutboxMessage.ce_id == committed.id))
        assert row is not None and row.published_at is not None
        assert (
            await s.scalar(select(OutboxMessage).where(OutboxMessage.ce_id == rolled_back.id))
        ) is None


async def test_relay_run_loop_publishes_new_rows(
    bus: PubSubBus, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    topic = fresh_topic(bus)
    sub = temp_subscription(bus, topic)
    relay = OutboxRelay(sessions, bus, poll_interval=0.05)
    task = asyncio.create_task(relay.run())
    try:
        async with sessions() as s, s.begin():
            ev = add_event(s, topic, "call.dispatch", "/tests", {"x": 1})
        relay.wake()
        msgs = await pull(bus, sub, 1)
        assert [m.message.attributes["ce-id"] for m in msgs] == [ev.id]
    finally:
        task.cancel()


def test_malformed_message_is_rejected() -> None:
    with pytest.raises(ValueError):
        CloudEvent.from_message({"ce-type": "x"}, b"{}")


async def test_a_row_that_cannot_be_published_blocks_nothing(
    bus: PubSubBus, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A row for a topic that does not exist (yet) backs off; rows behind it go out; once the
    topic exists the row is published too. Nothing is dropped."""
    missing = f"test-topic-missing-{uuid.uuid4().hex[:8]}"
    good_topic = fresh_topic(bus)
    good_sub = temp_subscription(bus, good_topic)
    async with sessions() as s, s.begin():
        stuck = add_event(s, missing, "webhook.delivery_requested", "/tests", {"k": "stuck"})
        good = add_event(s, good_topic, "webhook.delivery_requested", "/tests", {"k": "good"})

    relay = OutboxRelay(sessions, bus)
    # One pass is one batch, oldest first: rows other test packages left due in this shared
    # database may come first, so pass until the stuck row has been tried.
    for _ in range(100):
        await relay.publish_pending()
        async with sessions() as s:
            tried = await s.scalar(
                select(OutboxMessage.attempts).where(OutboxMessage.ce_id == stuck.id)
            )
            sent = await s.scalar(
                select(OutboxMessage.published_at).where(OutboxMessage.ce_id == good.id)
            )
        if tried and sent is not None:
            break
    [msg] = await pull(bus, good_sub, 1, wait_s=5)
    assert msg.message.attributes["ce-id"] == good.id
    async with sessions() as s:
        row = await s.scalar(select(OutboxMessage).where(OutboxMessage.ce_id == stuck.id))
        assert row is not None and row.published_at is None
        assert row.attempts >= 1 and row.next_attempt_at is not None
        assert "NotFound" in (row.last_error or "")

    bus.publisher.create_topic(name=bus.topic_path(missing))
    missing_sub = temp_subscription(bus, missing)
    for _ in range(100):
        await relay.publish_pending()
        async with sessions() as s:
            row = await s.scalar(select(OutboxMessage).where(OutboxMessage.ce_id == stuck.id))
        if row is not None and row.published_at is not None:
            break
        await asyncio.sleep(0.1)
    [late] = await pull(bus, missing_sub, 1, wait_s=5)
    assert late.message.attributes["ce-id"] == stuck.id


async def test_a_bus_leaves_the_environment_as_it_found_it(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bus for one stack must not point the rest of the process (and the children it starts)
    at that stack's emulator: a test process talks to several stacks, and one that is stopped
    would be dialled by every later client and service process."""
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:9")  # nobody listens there
    b = PubSubBus(settings)
    try:
        assert settings.pubsub_emulator_host != "127.0.0.1:9"
        assert os.environ["PUBSUB_EMULATOR_HOST"] == "127.0.0.1:9"
        # ...and the bus itself talks to the emulator its settings name.
        topic = fresh_topic(b)
        sub = temp_subscription(b, topic)
        await b.publish(topic, CloudEvent.create("call.requested", "/tests", {"call_id": "c2"}))
        assert len(await pull(b, sub, 1)) == 1
    finally:
        b.close()
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST")
    PubSubBus(settings).close()
    assert "PUBSUB_EMULATOR_HOST" not in os.environ
