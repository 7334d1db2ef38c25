"""`POST /v1/payments`: record a payment and apply it to the debtor's pending promises.

Idempotent by the client's `reference` (unique in the database): the same reference and body
again answers 200 with the stored payment and changes nothing; another body is a 409. The
allocation rules are pure (services/common/promise_tracking.py); this module locks the
promises (`FOR UPDATE`, so concurrent payments and the broken-promise pass serialise on them),
applies the allocation and emits `promise.kept` in the same transaction.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Request, Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from generated.client_api import PaymentCreate
from generated.money import Money
from generated.payment import Payment
from generated.payment_allocation import PaymentAllocation
from services.client_api.deps import RuntimeDep, SessionDep, SettingsDep
from services.client_api.errors import constraint_name
from services.client_api.idempotency import mark_replayed, request_fingerprint
from services.client_api.problems import (
    PAYMENT_REFERENCE_REUSED,
    PROMISE_NOT_PENDING,
    ProblemError,
    not_found,
    validation_error,
)
from services.client_api.responses import BAD_REQUEST, CONFLICT, NOT_FOUND, TOO_LARGE, UNPROCESSABLE
from services.client_api.strict import strictly
from services.client_api.validation import is_iso4217, storable_text_errors
from services.common import models
from services.common.logging import get_logger
from services.common.promise_events import (
    CE_TYPE_KEPT,
    add_promise_event,
    load_promise,
    promises_with_debtor,
)
from services.common.promise_tracking import OpenPromise, allocate, status_after_payment

log = get_logger(__name__)

router = APIRouter(tags=["Payments"])

SOURCE: Literal["/client-api"] = "/client-api"


def _reference_reused() -> ProblemError:
    return ProblemError(
        409,
        PAYMENT_REFERENCE_REUSED,
        "A payment with this reference was recorded with another body; use a new reference.",
    )


async def _payment_model(session: AsyncSession, row: models.Payment) -> Payment:
    pks = {a.promise_id for a in row.allocations} | (
        {row.promise_id} if row.promise_id is not None else set()
    )
    public = dict(
        (
            await session.execute(
                select(models.PaymentPromise.id, models.PaymentPromise.public_id).where(
                    models.PaymentPromise.id.in_(pks)
                )
            )
        )
        .tuples()
        .all()
    )
    return Payment(
        id=row.id,
        debtor_id=row.debtor_id,
        promise_id=public[row.promise_id] if row.promise_id is not None else None,
        amount=Money(amount_minor=row.amount_minor, currency=row.currency),
        paid_at=row.paid_at,
        reference=row.reference,
        allocations=[
            PaymentAllocation(
                promise_id=public[a.promise_id],
                amount=Money(amount_minor=a.amount_minor, currency=row.currency),
            )
            for a in row.allocations
        ],
        unallocated=Money(amount_minor=row.unallocated_minor, currency=row.currency),
        created_at=row.created_at,
    )


async def _replay(session: AsyncSession, reference: str, fp: str) -> models.Payment | None:
    previous: models.Payment | None = await session.scalar(
        select(models.Payment)
        .where(models.Payment.reference == reference)
        .options(selectinload(models.Payment.allocations))
    )
    if previous is not None and previous.request_fingerprint != fp:
        raise _reference_reused()
    return previous


async def _replayed(session: AsyncSession, previous: models.Payment, response: Response) -> Payment:
    log.info("payment_replayed", payment_id=str(previous.id))
    mark_replayed(response, status=200)
    return await _payment_model(session, previous)


async def _target_promises(
    session: AsyncSession, body: PaymentCreate
) -> list[models.PaymentPromise]:
    """The pending promises the payment may pay, locked; a bad `promise_id` is refused."""
    stmt = promises_with_debtor().with_for_update(of=models.PaymentPromise)
    if body.promise_id is None:
        # Only promises in the payment's currency can take it; ordered by id so concurrent
        # payments lock in the same order.
        result = await session.execute(
            stmt.where(
                models.Call.debtor_id == body.debtor_id,
                models.PaymentPromise.status == "pending",
                models.PaymentPromise.currency == body.amount.currency,
            ).order_by(models.PaymentPromise.id)
        )
        return [r[0] for r in result.all()]
    found = (
        await session.execute(stmt.where(models.PaymentPromise.public_id == body.promise_id))
    ).first()
    if found is None:
        raise not_found("promise")
    promise, debtor_id = found[0], found[1]
    if debtor_id != body.debtor_id:
        raise validation_error([("body.promise_id", "is a promise of another debtor")])
    if promise.currency != body.amount.currency:
        raise validation_error(
            [("body.amount.currency", f"must be the promise's currency, {promise.currency}")]
        )
    if promise.status != "pending":
        raise ProblemError(
            409,
            PROMISE_NOT_PENDING,
            f"The promise is {promise.status}; only a pending promise takes payments. Record "
            "the payment without promise_id to apply it to the debtor's pending promises.",
        )
    return [promise]


@router.post(
    "/v1/payments",
    operation_id="createPayment",
    status_code=201,
    response_model=Payment,
    responses={
        200: {"model": Payment, "description": "A replay: the payment with this reference."},
        **BAD_REQUEST,
        **NOT_FOUND,
        **CONFLICT,
        **TOO_LARGE,
        **UNPROCESSABLE,
    },
)
async def create_payment(
    body: PaymentCreate,
    session: SessionDep,
    settings: SettingsDep,
    runtime: RuntimeDep,
    request: Request,
    response: Response,
) -> Payment:
    body = await strictly(request, PaymentCreate) or body
    errors = storable_text_errors(body)
    if not is_iso4217(body.amount.currency):
        errors.append(("body.amount.currency", "must be an ISO 4217 currency code"))
    if body.amount.amount_minor <= 0:
        errors.append(("body.amount.amount_minor", "must be more than zero"))
    if errors:
        raise validation_error(errors)
    fp = request_fingerprint(body.model_dump(mode="json"))
    previous = await _replay(session, body.reference, fp)
    if previous is not None:
        return await _replayed(session, previous, response)
    if await session.get(models.Debtor, body.debtor_id) is None:
        raise not_found("debtor")

    promises = await _target_promises(session, body)
    result = allocate(
        body.amount.amount_minor,
        [OpenPromise(p.id, p.amount_minor, p.paid_minor, p.due_date) for p in promises],
    )
    now = datetime.now(UTC)
    by_pk = {p.id: p for p in promises}
    kept: list[int] = []
    for pk, part in result.parts:
        promise = by_pk[pk]
        promise.paid_minor += part
        new_status = status_after_payment("pending", promise.amount_minor, promise.paid_minor)
        if new_status != promise.status:
            promise.status = new_status
            promise.resolved_at = now
            kept.append(pk)
    payment = models.Payment(
        id=uuid.uuid4(),
        debtor_id=body.debtor_id,
        promise_id=promises[0].id if body.promise_id is not None else None,
        reference=body.reference,
        request_fingerprint=fp,
        amount_minor=body.amount.amount_minor,
        currency=body.amount.currency,
        unallocated_minor=result.unallocated,
        paid_at=body.paid_at,
        allocations=[
            models.PaymentAllocation(promise_id=pk, amount_minor=part) for pk, part in result.parts
        ],
    )
    session.add(payment)
    for pk in kept:
        add_promise_event(session, settings, CE_TYPE_KEPT, SOURCE, await load_promise(session, pk))
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        if constraint_name(exc) == "uq_payments_reference":
            # A concurrent request with this reference won: answer as its replay (or 409).
            previous = await _replay(session, body.reference, fp)
            if previous is not None:
                return await _replayed(session, previous, response)
        if (constraint_name(exc) or "").startswith("fk_"):
            raise not_found("debtor") from exc
        raise
    if kept:
        runtime.relay.wake()
    log.info(
        "payment_recorded",
        payment_id=str(payment.id),
        debtor_id=str(body.debtor_id),
        promises=len(result.parts),
        kept=len(kept),
    )
    stored = await _replay(session, body.reference, fp)
    assert stored is not None
    return await _payment_model(session, stored)
