"""`/healthz`: liveness, open without an API key."""

from __future__ import annotations

from fastapi import APIRouter

from generated.client_api import Health

router = APIRouter(tags=["Health"])


@router.get("/healthz", operation_id="health", response_model=Health)
async def health() -> Health:
    # Liveness only: the process answers once its lifespan (DB engine, subscribers) started.
    return Health(status="ok")
