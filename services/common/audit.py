"""The operator audit: `record_action` adds one `operator_actions` row in the caller's
transaction, so an action and its audit commit together or not at all.

Actor: the label of the API key that made the request (`services.client_api.deps.ActorDep`).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.common.logging import get_logger
from services.common.models.operator import OperatorAction

log = get_logger(__name__)


async def record_action(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    target_kind: str,
    target_id: uuid.UUID,
    reason: str | None,
    details: dict[str, object] | None = None,
) -> uuid.UUID:
    """Insert the audit row (flushed, not committed: the caller commits with its change);
    returns its id (`GET /v1/operator-actions` shows it)."""
    action_id = uuid.uuid4()
    session.add(
        OperatorAction(
            id=action_id,
            actor=actor,
            action=action,
            target_kind=target_kind,
            target_id=target_id,
            reason=reason,
            details=dict(details or {}),
            created_at=datetime.now(UTC),
        )
    )
    await session.flush()
    # Never the reason in logs: operators may quote the debtor in it.
    log.info(
        "operator_action",
        actor=actor,
        action=action,
        target_kind=target_kind,
        target_id=str(target_id),
    )
    return action_id
