"""What every service process holds: settings, database, bus, outbox relay, background tasks.

A service's FastAPI lifespan creates one `ServiceRuntime`, registers its consumers and starts it;
everything is stopped in reverse order on shutdown.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.common.bus import EventHandler, PubSubBus
from services.common.db import create_engine, session_factory
from services.common.logging import get_logger
from services.common.outbox import OutboxRelay
from services.common.settings import Settings

log = get_logger(__name__)


@dataclass
class ServiceRuntime:
    settings: Settings
    name: str
    engine: AsyncEngine = field(init=False)
    sessions: async_sessionmaker[AsyncSession] = field(init=False)
    bus: PubSubBus = field(init=False)
    relay: OutboxRelay = field(init=False)
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    _subscriptions: list[tuple[str, EventHandler]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.engine = create_engine(self.settings)
        self.sessions = session_factory(self.engine)
        self.bus = PubSubBus(self.settings)
        self.relay = OutboxRelay(
            self.sessions, self.bus, poll_interval=self.settings.outbox_poll_interval_seconds
        )

    def consume(self, subscription: str, handler: EventHandler) -> None:
        self._subscriptions.append((subscription, handler))

    def handlers(self) -> dict[str, EventHandler]:
        return dict(self._subscriptions)

    def background(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        self._tasks.append(asyncio.create_task(self._guard(coro, name), name=name))

    async def _guard(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background_task_crashed", task=name)
            raise

    async def start(self) -> None:
        self.background(self.relay.run(), "outbox-relay")
        if self.settings.pubsub_delivery == "pull":
            for subscription, handler in self._subscriptions:
                self.bus.subscribe(subscription, handler)
        # In push mode Pub/Sub calls /pubsub/push/<subscription> (services.common.push).
        log.info(
            "service_started",
            delivery=self.settings.pubsub_delivery,
            subscriptions=[s for s, _ in self._subscriptions],
        )

    async def stop(self) -> None:
        await self.bus.aclose()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.engine.dispose()

    async def health(self) -> dict[str, Any]:
        """Readiness: the database answers and every consumer's last pull worked."""
        report: dict[str, Any] = {"status": "ok", "service": self.name}
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:
            report.update(status="degraded", database=repr(exc))
        failing = {s.subscription: s.error for s in self.bus.consumer_states() if s.error}
        if failing:
            report.update(status="degraded", pubsub=failing)
        return report
