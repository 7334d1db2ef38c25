"""Pub/Sub topology: topics, the subscription each consumer reads, and their dead-letter topics.

One place, used by the local stack, tests, docker-compose setup and the services themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.common.settings import Settings


@dataclass(frozen=True)
class SubscriptionSpec:
    topic: str
    name: str
    consumer: str

    @property
    def dead_letter_topic(self) -> str:
        return f"{self.topic}-dlq"


def subscriptions(settings: Settings) -> list[SubscriptionSpec]:
    return [
        SubscriptionSpec(
            settings.pubsub_topic_call_requests, "call-requests.call-scheduler", "call-scheduler"
        ),
        SubscriptionSpec(
            settings.pubsub_topic_call_dispatch,
            "call-dispatch.voice-orchestrator",
            "voice-orchestrator",
        ),
        SubscriptionSpec(settings.pubsub_topic_call_events, "call-events.client-api", "client-api"),
        # The scheduler follows up ended calls (retries, callbacks, holds).
        SubscriptionSpec(
            settings.pubsub_topic_call_events, "call-events.call-scheduler", "call-scheduler"
        ),
        SubscriptionSpec(
            settings.pubsub_topic_webhook_deliveries,
            "webhook-deliveries.client-api",
            "webhook-worker",
        ),
        # Bulk debtor imports: one message per batch of rows of an uploaded file.
        SubscriptionSpec(
            settings.pubsub_topic_debtor_imports, "debtor-imports.client-api", "import-worker"
        ),
    ]


def topics(settings: Settings) -> list[str]:
    main = list(dict.fromkeys(s.topic for s in subscriptions(settings)))
    return main + [f"{t}-dlq" for t in main]


def subscription_for(
    settings: Settings, topic: str, consumer: str | None = None
) -> SubscriptionSpec:
    """The subscription on `topic` (of `consumer`, when several services read the topic; the
    first one listed otherwise)."""
    for spec in subscriptions(settings):
        if spec.topic == topic and (consumer is None or spec.consumer == consumer):
            return spec
    raise KeyError(topic)
