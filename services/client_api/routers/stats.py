"""`GET /v1/stats/cost`: what calls cost, per connected call and per promise to pay."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import BigInteger, func, select

from generated.client_api import CostStats
from services.client_api.deps import SessionDep
from services.client_api.problems import validation_error
from services.client_api.responses import BAD_REQUEST, UNPROCESSABLE
from services.client_api.validation import converts_to_utc
from services.common import models
from services.common.pricing import per_unit

router = APIRouter(tags=["Stats"])

MAX_RANGE = timedelta(days=366)


@router.get(
    "/v1/stats/cost",
    operation_id="getCostStats",
    response_model=CostStats,
    response_model_by_alias=True,
    responses={**BAD_REQUEST, **UNPROCESSABLE},
)
async def cost_stats(
    session: SessionDep,
    from_: Annotated[
        datetime,
        Query(alias="from", description="Start of the range (inclusive), RFC 3339 with offset."),
    ],
    to: Annotated[
        datetime, Query(description="End of the range (exclusive), RFC 3339 with offset.")
    ],
) -> CostStats:
    errors = [
        (f"query.{name}", "must include a UTC offset, e.g. 2026-11-01T00:00:00Z")
        for name, value in (("from", from_), ("to", to))
        if value.tzinfo is None
    ]
    errors += [
        (f"query.{name}", "is out of range once converted to UTC")
        for name, value in (("from", from_), ("to", to))
        if value.tzinfo is not None and not converts_to_utc(value)
    ]
    if not errors and to <= from_:
        errors.append(("query.to", "must be after `from`"))
    if not errors and to - from_ > MAX_RANGE:
        errors.append(("query.to", "the range may span at most 366 days"))
    if errors:
        raise validation_error(errors)
    call = models.Call
    total_cost = func.coalesce(func.sum(call.cost["total_micro_usd"].astext.cast(BigInteger)), 0)
    row = (
        await session.execute(
            select(
                func.count(),
                func.count(call.answered_at),
                func.count().filter(call.outcome == "promise_to_pay"),
                total_cost,
            ).where(call.created_at >= from_, call.created_at < to)
        )
    ).one()
    calls, connected, promises, total = (int(v) for v in row)
    return CostStats.model_validate(
        {
            "from": from_,
            "to": to,
            "calls": calls,
            "connected_calls": connected,
            "promises": promises,
            "total_cost_micro_usd": total,
            "cost_per_connected_call_micro_usd": per_unit(total, connected),
            "cost_per_promise_micro_usd": per_unit(total, promises),
        }
    )
