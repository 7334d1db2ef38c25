"""`GET /healthz`: live calls, failing Pub/Sub consumers, event-loop lag and GC pauses."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from services.common.looplag import GcPauseMonitor, LoopLagMonitor
from services.voice_orchestrator.routes import orchestrator

router = APIRouter()


@router.get("/healthz")
async def healthz(request: Request) -> dict[str, Any]:
    orch = orchestrator(request)
    # A blocked loop delays every live call's audio: health reports how late it wakes, and how
    # long the garbage collector held it (both built in create_app).
    lag: LoopLagMonitor = request.app.state.lag
    gc_pauses: GcPauseMonitor = request.app.state.gc_pauses
    states = orch.bus.consumer_states() if orch.bus else []
    failing = {s.subscription: s.error for s in states if s.error}
    return {
        "status": "degraded" if failing else "ok",
        "live_calls": len(orch.live),
        **({"pubsub": failing} if failing else {}),
        **lag.snapshot(),
        **gc_pauses.snapshot(),
    }
