"""The pull consumer against the Pub/Sub emulator: restarts strand nothing, slow handlers keep
their lease, failures are redelivered, Pub/Sub outages are reported and survived."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from services.common.bus import CloudEvent, PubSubBus
from services.common.consumer import PullConsumer
from services.common.settings import Settings
from tests.helpers import pull


@pytest.fixture
def admin(settings: Settings) -> Iterator[PubSubBus]:
    b = PubSubBus(settings)
    yield b
    b.close()


def _topic_and_sub(bus: PubSubBus, ack_deadline_s: int = 10) -> tuple[str, str]:
    name = f"consumer-test-{uuid.uuid4().hex[:8]}"
    bus.publisher.create_topic(name=bus.topic_path(name))
    bus.subscriber.create_subscription(
        request={
            "name": bus.subscription_path(name),
            "topic": bus.topic_path(name),
            "ack_deadline_seconds": ack_deadline_s,
            "retry_policy": {"minimum_backoff": {"seconds": 1}, "maximum_backoff": {"seconds": 2}},
        }
    )
    return name, name


async def _wait_for(cond: Callable[[], object], within_s: float) -> None:
    for _ in range(int(within_s / 0.05)):
        if cond():
            return
        await asyncio.sleep(0.05)


async def test_restarted_consumers_strand_nothing(admin: PubSubBus, settings: Settings) -> None:
    """The regression behind the move off StreamingPull: after consumers of a subscription
    stopped (as at every deploy or crash), every new message still reaches the live one."""
    topic, sub = _topic_and_sub(admin)
    for round_ in range(3):
        got = asyncio.Event()

        async def handle(event: CloudEvent, got: asyncio.Event = got) -> None:
            got.set()

        bus = PubSubBus(settings)
        bus.subscribe(sub, handle)
        await admin.publish(topic, CloudEvent.create("t.warm", "/tests", {"round": round_}))
        await asyncio.wait_for(got.wait(), 30)
        await bus.aclose()

    seen: list[int] = []

    async def record(event: CloudEvent) -> None:
        if event.type == "t.msg":
            seen.append(event.data["i"])

    bus = PubSubBus(settings)
    bus.subscribe(sub, record)
    for i in range(10):
        await admin.publish(topic, CloudEvent.create("t.msg", "/tests", {"i": i}))
    # At worst a message taken by a stopped consumer's last pull returns after the ack deadline.
    await _wait_for(lambda: len(set(seen)) == 10, within_s=3 * settings.pubsub_ack_deadline_seconds)
    await bus.aclose()
    assert sorted(set(seen)) == list(range(10))


async def test_slow_handler_keeps_its_lease(admin: PubSubBus, settings: Settings) -> None:
    """A handler that runs past the ack deadline is not handed to the other consumer."""
    topic, sub = _topic_and_sub(admin, ack_deadline_s=2)
    runs: Counter[str] = Counter()
    done = asyncio.Event()

    async def slow(event: CloudEvent) -> None:
        runs[event.id] += 1
        await asyncio.sleep(5)
        done.set()

    client = PubSubBus(settings)
    consumers = [
        PullConsumer(
            client._consumer_client(),
            admin.subscription_path(sub),
            parse=CloudEvent.from_message,
            handle=slow,
            ack_deadline_s=2,
            pull_timeout_s=2,
        )
        for _ in range(2)
    ]
    tasks = [asyncio.create_task(c.run()) for c in consumers]
    event = CloudEvent.create("t.slow", "/tests", {})
    await admin.publish(topic, event)
    await asyncio.wait_for(done.wait(), 20)
    await asyncio.sleep(3)  # past another deadline: a lost lease would show as a second run
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await client.aclose()
    assert runs == Counter({event.id: 1})
    assert sum(c.state.handled for c in consumers) == 1


async def test_failed_handler_is_redelivered_then_acked(
    admin: PubSubBus, settings: Settings
) -> None:
    topic, sub = _topic_and_sub(admin)
    attempts: list[str] = []
    ok = asyncio.Event()

    async def flaky(event: CloudEvent) -> None:
        attempts.append(event.id)
        if len(attempts) < 3:
            raise RuntimeError("transient")
        ok.set()

    bus = PubSubBus(settings)
    bus.subscribe(sub, flaky)
    event = CloudEvent.create("t.flaky", "/tests", {})
    await admin.publish(topic, event)
    await asyncio.wait_for(ok.wait(), 30)
    await asyncio.sleep(2)  # acked: no fourth delivery
    [state] = bus.consumer_states()
    await bus.aclose()
    assert attempts == [event.id] * 3
    assert (state.failed, state.handled) == (2, 1)


async def test_malformed_message_is_acked_and_dropped(admin: PubSubBus, settings: Settings) -> None:
    topic, sub = _topic_and_sub(admin)
    handled: list[CloudEvent] = []

    async def handle(event: CloudEvent) -> None:
        handled.append(event)

    bus = PubSubBus(settings)
    bus.subscribe(sub, handle)
    admin.publisher.publish(admin.topic_path(topic), b"not json", **{"ce-id": "x"}).result()
    good = CloudEvent.create("t.good", "/tests", {})
    await admin.publish(topic, good)
    await _wait_for(lambda: handled, within_s=20)
    await asyncio.sleep(2)
    [state] = bus.consumer_states()
    await bus.aclose()
    assert [e.id for e in handled] == [good.id]
    assert state.in_flight == 0 and state.failed == 0
    # Nothing is left on the subscription: the malformed message was acked, not nacked.
    resp = admin.subscriber.pull(
        subscription=admin.subscription_path(sub), max_messages=10, timeout=3
    )
    assert list(resp.received_messages) == []


async def test_missing_subscription_is_reported_then_recovers(
    admin: PubSubBus, settings: Settings
) -> None:
    """A consumer whose subscription is missing (Pub/Sub restarted empty, not yet provisioned)
    reports the failure and keeps trying; once it exists, messages flow."""
    name = f"consumer-late-{uuid.uuid4().hex[:8]}"
    got = asyncio.Event()

    async def handle(event: CloudEvent) -> None:
        got.set()

    bus = PubSubBus(settings)
    bus.subscribe(name, handle)
    [state] = bus.consumer_states()
    await _wait_for(lambda: state.error is not None, within_s=10)
    assert state.error == "NotFound" and not state.healthy
    admin.publisher.create_topic(name=admin.topic_path(name))
    admin.subscriber.create_subscription(
        name=admin.subscription_path(name), topic=admin.topic_path(name)
    )
    await admin.publish(name, CloudEvent.create("t.late", "/tests", {}))
    await asyncio.wait_for(got.wait(), 30)
    assert state.healthy and state.error is None
    await bus.aclose()


async def test_a_message_that_always_fails_ends_in_the_dead_letter_topic(
    admin: PubSubBus, settings: Settings
) -> None:
    """Nothing is lost even when a handler can never succeed: after the subscription's
    max delivery attempts the message is in `<topic>-dlq`, where operators inspect it."""
    name = f"consumer-poison-{uuid.uuid4().hex[:8]}"
    dlq = f"{name}-dlq"
    for topic in (name, dlq):
        admin.publisher.create_topic(name=admin.topic_path(topic))
    admin.subscriber.create_subscription(
        name=admin.subscription_path(f"{dlq}.inspect"), topic=admin.topic_path(dlq)
    )
    admin.subscriber.create_subscription(
        request={
            "name": admin.subscription_path(name),
            "topic": admin.topic_path(name),
            "ack_deadline_seconds": 10,
            "retry_policy": {"minimum_backoff": {"seconds": 1}, "maximum_backoff": {"seconds": 1}},
            "dead_letter_policy": {
                "dead_letter_topic": admin.topic_path(dlq),
                "max_delivery_attempts": 5,
            },
        }
    )
    attempts: list[str] = []

    async def always_fails(event: CloudEvent) -> None:
        attempts.append(event.id)
        raise RuntimeError("never works")

    bus = PubSubBus(settings)
    bus.subscribe(name, always_fails)
    poison = CloudEvent.create("t.poison", "/tests", {"n": 1})
    await admin.publish(name, poison)
    dead: list[Any] = []
    for _ in range(60):
        dead = await pull(admin, f"{dlq}.inspect", 1, wait_s=0.5)
        if dead:
            break
    await bus.aclose()
    assert [m.message.attributes["ce-id"] for m in dead] == [poison.id]
    assert CloudEvent.from_message(dict(dead[0].message.attributes), dead[0].message.data).data == {
        "n": 1
    }
    assert attempts == [poison.id] * 5
