"""Transactional outbox: events commit with the business rows that cause them; a relay publishes.

`add_event` writes an `outbox` row in the caller's transaction. `OutboxRelay` claims unpublished
rows (`FOR UPDATE SKIP LOCKED`, so several relays can run), publishes each with its stored
`ce-id`, and marks it published. A crash between publish and mark republishes the same `ce-id`,
which consumers deduplicate.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.bus import CloudEvent, Publisher
from services.common.logging import get_logger
from services.common.models import OutboxMessage

log = get_logger(__name__)


def add_event(
    session: AsyncSession,
    topic: str,
    ce_type: str,
    source: str,
    data: BaseModel | dict[str, Any],
    ce_id: str | None = None,
) -> CloudEvent:
    event = CloudEvent.create(ce_type, source, data)
    if ce_id is not None:
        event = CloudEvent(type=event.type, source=event.source, data=event.data, id=ce_id)
    session.add(
        OutboxMessage(
            topic=topic,
            ce_id=event.id,
            ce_type=event.type,
            ce_source=event.source,
            ce_time=event.time,
            payload=event.data,
        )
    )
    return event


class OutboxRelay:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        publisher: Publisher,
        poll_interval: float = 0.2,
        batch_size: int = 100,
    ) -> None:
        self.sessions = sessions
        self.publisher = publisher
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Ask the relay to look now (after a commit) instead of at the next poll."""
        self._wake.set()

    async def publish_pending(self) -> int:
        async with self.sessions() as session, session.begin():
            rows = (
                await session.scalars(
                    select(OutboxMessage)
                    .where(OutboxMessage.published_at.is_(None))
                    .order_by(OutboxMessage.id)
                    .limit(self.batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            events = [
                (
                    row,
                    CloudEvent(
                        id=row.ce_id,
                        type=row.ce_type,
                        source=row.ce_source,
                        time=row.ce_time,
                        data=row.payload,
                    ),
                )
                for row in rows
            ]
            await asyncio.gather(*(self.publisher.publish(r.topic, e) for r, e in events))
            await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_([r.id for r, _ in events]))
                .values(published_at=datetime.now(UTC))
            )
            return len(rows)

    async def run(self) -> None:
        while True:
            try:
                published = await self.publish_pending()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep relaying after a transient DB or Pub/Sub error
                log.warning("outbox_relay_error", error=repr(exc))
                published = 0
            if published >= self.batch_size:
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval)
            except TimeoutError:
                pass
