"""Every Pub/Sub message of the whole flow delivered three times, the copies late and out of
order: still one Twilio call per trigger, one `call.completed` per call, one webhook delivery
record per event and endpoint, one POST to the receiver."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from sqlalchemy import func, select

from scripts.calls import wait_terminal
from services.common.bus import CloudEvent, PubSubBus
from services.common.models import WebhookDelivery
from services.common.settings import Settings
from tests.reliability.conftest import Env, hooks_for, place, twilio_calls_to

PERSONAS = ("cooperative", "callback_later", "busy", "no_answer")
COPIES = 2  # extra deliveries of every message, on top of the original


@dataclass
class Replayer:
    """Sees every message on a topic through its own subscription and publishes it again,
    twice, with the same ce-id, each copy after a random delay: duplicates that arrive late and
    out of order with respect to whatever the original caused."""

    bus: PubSubBus
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    seen: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    replayed: Counter[str] = field(default_factory=Counter)
    events: dict[str, list[CloudEvent]] = field(default_factory=lambda: defaultdict(list))
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def watch(self, topic: str) -> None:
        name = f"replayer-{topic}-{uuid.uuid4().hex[:6]}"
        self.bus.subscriber.create_subscription(
            name=self.bus.subscription_path(name), topic=self.bus.topic_path(topic)
        )

        async def handle(event: CloudEvent) -> None:
            if event.id in self.seen[topic]:
                return  # one of our own copies
            self.seen[topic].add(event.id)
            self.events[topic].append(event)
            for _ in range(COPIES):
                task = asyncio.create_task(self._later(topic, event, self.rng.uniform(0, 2.0)))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)

        self.bus.subscribe(name, handle)

    async def _later(self, topic: str, event: CloudEvent, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        await self.bus.publish(topic, event)
        self.replayed[topic] += 1


@pytest.fixture
async def replayer(env: Env) -> AsyncIterator[Replayer]:
    settings: Settings = env.deployment.stack.settings()
    r = Replayer(PubSubBus(settings))
    for topic in (
        settings.pubsub_topic_call_requests,
        settings.pubsub_topic_call_dispatch,
        settings.pubsub_topic_call_events,
        settings.pubsub_topic_webhook_deliveries,
    ):
        r.watch(topic)
    yield r
    await asyncio.gather(*r.tasks, return_exceptions=True)
    await r.bus.aclose()


async def test_triplicated_out_of_order_messages_change_nothing(
    env: Env, replayer: Replayer
) -> None:
    placed = [await place(env, persona, 600 + i) for i, persona in enumerate(PERSONAS)]
    call_ids = [cid for _, cid in placed]
    views = await wait_terminal(env.api, call_ids, timeout_s=180)
    assert all(v["outcome"] for v in views.values()), views
    await env.receiver.wait_for(len(call_ids), timeout_s=60)
    # Let every late copy land and be handled (copies wait up to 2 s, then one hop each).
    await asyncio.sleep(8)
    await asyncio.gather(*replayer.tasks, return_exceptions=True)

    settings = env.deployment.stack.settings()
    # The duplication really happened, on every topic of the flow.
    for topic in (
        settings.pubsub_topic_call_requests,
        settings.pubsub_topic_call_dispatch,
        settings.pubsub_topic_call_events,
        settings.pubsub_topic_webhook_deliveries,
    ):
        assert replayer.replayed[topic] >= COPIES * len(call_ids), (topic, replayer.replayed)

    completed = Counter(
        e.data["call"]["id"]
        for e in replayer.events[settings.pubsub_topic_call_events]
        if e.type == "call.completed"
    )
    async with env.sessions() as s:
        deliveries = dict(
            (
                await s.execute(
                    select(WebhookDelivery.event_id, func.count())
                    .where(WebhookDelivery.payload["data"]["call"]["id"].astext.in_(call_ids))
                    .group_by(WebhookDelivery.event_id, WebhookDelivery.endpoint_id)
                )
            ).all()
        )
    for (phone, call_id), persona in zip(placed, PERSONAS, strict=True):
        assert len(await twilio_calls_to(env, phone)) == 1, persona
        assert completed[call_id] == 1, persona  # one distinct call.completed event
        hooks = hooks_for(env, call_id)
        assert len(hooks) == 1, persona  # one POST, whatever was redelivered
        assert deliveries[hooks[0].headers["webhook-id"]] == 1, persona
    assert len(deliveries) == len(call_ids)
    # ... and the copies did reach every consumer, which recognised them: by ce-id, or (a copy
    # of a dispatch that arrives while the original is still dialing, before its ce-id is
    # recorded) by the call's dial intent.
    for service in ("call-scheduler", "voice-orchestrator", "client-api"):
        log = (env.deployment.out / f"{service}.log").read_text()
        recognised = log.count('"duplicate_message_skipped"')
        if service == "voice-orchestrator":
            recognised += log.count('"dispatch_skipped_already_placed"')
        assert recognised >= COPIES * len(call_ids), service
