"""The sweeper: ends calls stuck in a live status whose session vanished (crash, lost instance)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import or_, select

from generated.call_step_reason import CallStepReason
from services.common.logging import get_logger
from services.common.models import Call
from services.voice_orchestrator.finalize import end_without_session

if TYPE_CHECKING:
    from services.voice_orchestrator.orchestrator import Orchestrator

log = get_logger(__name__)

SWEEP_INTERVAL_S = 60.0


async def run_sweeper(orch: Orchestrator) -> None:
    """End calls stuck in a live status whose session vanished (crash, lost instance)."""
    stale = timedelta(seconds=orch.settings.call_sweeper_stale_seconds)
    # A third of the staleness: a vanished call ends at most ~1.33 x stale after its last beat.
    interval = min(SWEEP_INTERVAL_S, max(1.0, stale.total_seconds() / 3))
    while True:
        await asyncio.sleep(interval)
        try:
            cutoff = datetime.now(UTC) - stale
            async with orch.sessions() as session, session.begin():
                ids = (
                    await session.scalars(
                        select(Call.id).where(
                            Call.status.in_(("dialing", "ringing", "in_progress")),
                            # A dial with no CallSid yet is the reconciler's to settle.
                            Call.twilio_call_sid.is_not(None) | Call.dial_started_at.is_(None),
                            or_(
                                Call.heartbeat_at < cutoff,
                                (Call.heartbeat_at.is_(None)) & (Call.started_at < cutoff),
                            ),
                        )
                    )
                ).all()
                for call_id in ids:
                    if str(call_id) in orch.live:
                        continue
                    orch.release_call(str(call_id))
                    await end_without_session(
                        session,
                        orch.settings,
                        call_id,
                        status="failed",
                        outcome="failed",
                        failure_reason="the call's session vanished (no heartbeat)",
                        reason=CallStepReason.SESSION_VANISHED,
                    )
            if ids and orch.relay is not None:
                orch.relay.wake()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("sweeper_error", error=repr(exc))
