"""The Pub/Sub bus: CloudEvents (binary mode) over google-cloud-pubsub.

A message's attributes are the CloudEvents context (`ce-id`, `ce-type`, `ce-source`,
`ce-specversion`, `ce-time`) and its body is the event's JSON data. `ce-id` is the idempotency key:
`IdempotentHandler` records it in `processed_messages` in the same transaction as the handler's
own writes, so a redelivered message changes the database once.

Every consumer declares the `ce-type`s it handles (a `ce_types` attribute on its handler, see
`handled_types`); the pull consumer and the push endpoint drop (ack) any other type with a log.

Consumers run either as pull consumers (`services.common.consumer`: local stack, workers) or
behind a push endpoint (Cloud Run); both call the same handler.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import grpc
from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1
from google.pubsub_v1.services.subscriber import SubscriberAsyncClient
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcAsyncIOTransport
from pydantic import BaseModel
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.consumer import ConsumerState, PullConsumer
from services.common.emulator_env import emulator_env
from services.common.logging import get_logger
from services.common.models import ProcessedMessage
from services.common.settings import Settings
from services.common.topology import SubscriptionSpec, subscriptions, topics

log = get_logger(__name__)

SPECVERSION = "1.0"


def _jsonable(data: BaseModel | dict[str, Any]) -> dict[str, Any]:
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json", exclude_none=False)
    return data


@dataclass(frozen=True)
class CloudEvent:
    type: str
    source: str
    data: dict[str, Any]
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    specversion: str = SPECVERSION

    @classmethod
    def create(cls, type: str, source: str, data: BaseModel | dict[str, Any]) -> CloudEvent:
        return cls(type=type, source=source, data=_jsonable(data))

    def attributes(self) -> dict[str, str]:
        return {
            "ce-id": self.id,
            "ce-type": self.type,
            "ce-source": self.source,
            "ce-specversion": self.specversion,
            "ce-time": self.time.isoformat(),
            "content-type": "application/json",
        }

    def body(self) -> bytes:
        return json.dumps(self.data, separators=(",", ":")).encode()

    @classmethod
    def from_message(cls, attributes: dict[str, str], body: bytes) -> CloudEvent:
        missing = [a for a in ("ce-id", "ce-type", "ce-source") if a not in attributes]
        if missing:
            raise ValueError(f"not a CloudEvent: missing attributes {missing}")
        return cls(
            id=attributes["ce-id"],
            type=attributes["ce-type"],
            source=attributes["ce-source"],
            specversion=attributes.get("ce-specversion", SPECVERSION),
            time=datetime.fromisoformat(attributes["ce-time"])
            if "ce-time" in attributes
            else datetime.now(UTC),
            data=json.loads(body) if body else {},
        )


EventHandler = Callable[[CloudEvent], Coroutine[Any, Any, None]]


def handled_types(handler: object) -> frozenset[str] | None:
    """The ce-types a handler declares in its `ce_types` attribute, looking through wrappers
    (`IdempotentHandler`, `functools.wraps`); None when nothing declares any: it takes all."""
    seen: object | None = handler
    while seen is not None:
        types = getattr(seen, "ce_types", None)
        if types is not None:
            return frozenset(types)
        seen = getattr(seen, "__wrapped__", None)
    return None


class Publisher(Protocol):
    async def publish(self, topic: str, event: CloudEvent) -> str: ...


def _emulator(settings: Settings) -> AbstractContextManager[None]:
    return emulator_env("PUBSUB_EMULATOR_HOST", settings.pubsub_emulator_host)


class PubSubBus:
    """Publisher (batching client library) and pull consumers (async client) on Pub/Sub."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.project = settings.gcp_project_id
        with _emulator(settings):
            self.publisher = pubsub_v1.PublisherClient(
                batch_settings=pubsub_v1.types.BatchSettings(max_latency=0.005)
            )
            # Synchronous client for administration and tests (create, pull, ack).
            self.subscriber = pubsub_v1.SubscriberClient()
        self._async_subscriber: SubscriberAsyncClient | None = None
        self._consumers: list[tuple[PullConsumer, asyncio.Task[None]]] = []

    def topic_path(self, topic: str) -> str:
        return self.publisher.topic_path(self.project, topic)

    def subscription_path(self, name: str) -> str:
        return self.subscriber.subscription_path(self.project, name)

    async def publish(self, topic: str, event: CloudEvent) -> str:
        future = self.publisher.publish(self.topic_path(topic), event.body(), **event.attributes())
        message_id: str = await asyncio.wrap_future(future)
        return message_id

    def _consumer_client(self) -> SubscriberAsyncClient:
        # Created on first use, inside the running loop the consumers live on.
        if self._async_subscriber is None:
            if self.settings.pubsub_emulator_host:
                channel = grpc.aio.insecure_channel(self.settings.pubsub_emulator_host)
                transport = SubscriberGrpcAsyncIOTransport(channel=channel)
                self._async_subscriber = SubscriberAsyncClient(transport=transport)
            else:
                self._async_subscriber = SubscriberAsyncClient()
        return self._async_subscriber

    def subscribe(
        self, subscription: str, handler: EventHandler, *, max_messages: int = 100
    ) -> None:
        """Run `handler` for each message of its declared types on this loop; ack on success,
        nack on error; ack and log any other type."""
        consumer = PullConsumer(
            self._consumer_client(),
            self.subscription_path(subscription),
            parse=CloudEvent.from_message,
            handle=handler,
            max_outstanding=max_messages,
            ack_deadline_s=self.settings.pubsub_ack_deadline_seconds,
            ce_types=handled_types(handler),
        )
        task = asyncio.create_task(consumer.run(), name=f"consume:{subscription}")
        self._consumers.append((consumer, task))

    def consumer_states(self) -> list[ConsumerState]:
        return [c.state for c, _ in self._consumers]

    async def aclose(self, drain_s: float = 5.0) -> None:
        """Stop pulling, let running handlers finish, then close the clients."""
        for _, task in self._consumers:
            task.cancel()
        await asyncio.gather(*(t for _, t in self._consumers), return_exceptions=True)
        for consumer, _ in self._consumers:
            await consumer.drain(drain_s)
        self._consumers.clear()
        if self._async_subscriber is not None:
            await self._async_subscriber.transport.close()
            self._async_subscriber = None
        self.close()

    def close(self) -> None:
        for _, task in self._consumers:
            task.cancel()
        self.subscriber.close()
        self.publisher.stop()


class IdempotentHandler:
    """Wraps a handler so its database effect happens once per `ce-id`.

    The `processed_messages` row and the handler's writes commit in one transaction; a duplicate
    delivery finds the row and does nothing. A handler error rolls both back, so the message is
    nacked and redelivered.
    """

    def __init__(
        self,
        consumer: str,
        sessions: async_sessionmaker[AsyncSession],
        handle: Callable[[AsyncSession, CloudEvent], Awaitable[None]],
        after_commit: Callable[[], None] | None = None,
    ) -> None:
        self.consumer = consumer
        self.sessions = sessions
        self.handle = handle
        self.__wrapped__ = handle  # its declared ce_types are the wrapper's (handled_types)
        # e.g. wake the outbox relay so an event written by the handler leaves at once
        self.after_commit = after_commit

    async def __call__(self, event: CloudEvent) -> None:
        async with self.sessions() as session, session.begin():
            inserted = await session.execute(
                insert(ProcessedMessage)
                .values(consumer=self.consumer, ce_id=event.id)
                .on_conflict_do_nothing()
                .returning(ProcessedMessage.ce_id)
            )
            if inserted.first() is None:
                log.info("duplicate_message_skipped", ce_id=event.id, ce_type=event.type)
                return
            await self.handle(session, event)
        if self.after_commit is not None:
            self.after_commit()


def ensure_topology(settings: Settings) -> None:
    """Create topics, subscriptions and dead-letter topics if missing (idempotent)."""
    with _emulator(settings):
        publisher = pubsub_v1.PublisherClient()
        subscriber = pubsub_v1.SubscriberClient()
    project = settings.gcp_project_id

    def create_topic(topic: str) -> None:
        try:
            publisher.create_topic(name=publisher.topic_path(project, topic))
        except gexc.AlreadyExists:
            pass

    try:
        # Dead-letter topics first (subscriptions name them). Then each topic with its
        # subscription right behind it: Pub/Sub delivers a message only to subscriptions that
        # exist when it is published, and publishers waiting in the outbox retry the moment the
        # topic reappears (after an emulator restart, say). Creating every topic before any
        # subscription left seconds in which those retries were accepted and delivered to no one.
        main = {spec.topic for spec in subscriptions(settings)}
        for topic in topics(settings):
            if topic not in main:
                create_topic(topic)
        for spec in subscriptions(settings):
            create_topic(spec.topic)
            _create_subscription(publisher, subscriber, project, spec, settings)
            dlq_sub = SubscriptionSpec(
                spec.dead_letter_topic, f"{spec.dead_letter_topic}.inspect", "ops"
            )
            try:
                subscriber.create_subscription(
                    name=subscriber.subscription_path(project, dlq_sub.name),
                    topic=publisher.topic_path(project, dlq_sub.topic),
                )
            except gexc.AlreadyExists:
                pass
    finally:
        subscriber.close()


def _create_subscription(
    publisher: Any, subscriber: Any, project: str, spec: SubscriptionSpec, settings: Settings
) -> None:
    request = {
        "name": subscriber.subscription_path(project, spec.name),
        "topic": publisher.topic_path(project, spec.topic),
        "ack_deadline_seconds": settings.pubsub_ack_deadline_seconds,
        "retry_policy": {
            "minimum_backoff": {"seconds": settings.pubsub_min_backoff_seconds},
            "maximum_backoff": {"seconds": settings.pubsub_max_backoff_seconds},
        },
        "dead_letter_policy": {
            "dead_letter_topic": publisher.topic_path(project, spec.dead_letter_topic),
            "max_delivery_attempts": settings.pubsub_max_delivery_attempts,
        },
    }
    try:
        subscriber.create_subscription(request=request)
    except gexc.AlreadyExists:
        pass
