"""Transactional outbox: events commit with the business rows that cause them; a relay publishes.

`add_event` writes an `outbox` row in the caller's transaction. `OutboxRelay` claims unpublished
rows (`FOR UPDATE SKIP LOCKED`, so several relays can run), publishes each with its stored
`ce-id`, and marks it published. A crash between publish and mark republishes the same `ce-id`,
which consumers deduplicate. A row whose publish fails (topic missing, Pub/Sub down) backs off
on its own (`attempts`, `next_attempt_at`), so it never holds up the rows behind it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common import failpoints
from services.common.bus import CloudEvent, Publisher
from services.common.logging import get_logger
from services.common.models import OutboxMessage

log = get_logger(__name__)

PUBLISH_TIMEOUT_S = 10.0


def retry_delay(attempts: int) -> timedelta:
    """Backoff for a row whose publish failed `attempts` times: 0.5 s doubling, capped at 30 s."""
    return timedelta(seconds=min(0.5 * 2 ** (attempts - 1), 30.0))


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
        """Publish one batch of due rows; returns how many rows were tried."""
        now = datetime.now(UTC)
        async with self.sessions() as session, session.begin():
            rows = (
                await session.scalars(
                    select(OutboxMessage)
                    .where(
                        OutboxMessage.published_at.is_(None),
                        or_(
                            OutboxMessage.next_attempt_at.is_(None),
                            OutboxMessage.next_attempt_at <= now,
                        ),
                    )
                    .order_by(OutboxMessage.id)
                    .limit(self.batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            failpoints.hit("outbox.before_publish")
            results = await asyncio.gather(
                *(self._publish(row) for row in rows), return_exceptions=True
            )
            done = [row.id for row, result in zip(rows, results, strict=True) if result is None]
            if done:
                await session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id.in_(done))
                    .values(published_at=datetime.now(UTC))
                )
            for row, result in zip(rows, results, strict=True):
                if isinstance(result, BaseException):
                    row.attempts += 1
                    row.next_attempt_at = now + retry_delay(row.attempts)
                    row.last_error = repr(result)[:500]
                    log.warning(
                        "outbox_publish_failed",
                        ce_id=row.ce_id,
                        topic=row.topic,
                        attempts=row.attempts,
                        error=row.last_error,
                    )
                elif row.attempts:
                    log.info(
                        "outbox_published_after_retry",
                        ce_id=row.ce_id,
                        topic=row.topic,
                        attempts=row.attempts,
                    )
            return len(rows)

    async def _publish(self, row: OutboxMessage) -> None:
        event = CloudEvent(
            id=row.ce_id, type=row.ce_type, source=row.ce_source, time=row.ce_time, data=row.payload
        )
        # Bounded: row locks are held meanwhile. A publish that completes after the timeout is
        # published again later under the same ce-id, which consumers deduplicate.
        await asyncio.wait_for(self.publisher.publish(row.topic, event), PUBLISH_TIMEOUT_S)

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
