"""SQLAlchemy 2 ORM models: the tables every service shares.

Ownership (see ARCHITECTURE.md): the Client API writes debtors, calls (queued), webhook endpoints,
deliveries and attempts; the Call Scheduler moves a call to `dispatched`; the Voice Orchestrator
owns everything about the live call (status after dispatch, turns, promise, callback, outcome).
Duplicates are made impossible by constraints, not by application checks alone.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy import (
    text as sql_text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

STAGES = ("pre_delinquency", "early", "late")
CALL_STATUSES = (
    "queued",
    "dispatched",
    "dialing",
    "ringing",
    "in_progress",
    "completed",
    "busy",
    "no_answer",
    "failed",
    "canceled",
)
LIVE_CALL_STATUSES = ("queued", "dispatched", "dialing", "ringing", "in_progress")
CALL_OUTCOMES = (
    "promise_to_pay",
    "callback_scheduled",
    "refused",
    "disputed",
    "wrong_party",
    "no_answer",
    "voicemail",
    "opted_out",
    "failed",
    "voicemail_left",
    "machine",
    "unverified",
    "hung_up",
    "no_response",
    "validation_notice_requested",
)
# How far the person on a call was verified (specs/schemas/verification_level.json), and the
# kinds of fact on file the agent may ask for (verification_fact_kind.json).
VERIFICATION_LEVELS = ("none", "name_only", "name_and_fact")
VERIFICATION_FACTS = ("date_of_birth", "postal_code", "account_last4")
# Twilio's AMD verdicts (AnsweredBy), as posted to the orchestrator's AMD callback.
ANSWERED_BY = (
    "human",
    "machine_start",
    "machine_end_beep",
    "machine_end_silence",
    "machine_end_other",
    "fax",
    "unknown",
)
DELIVERY_STATUSES = ("pending", "succeeded", "failed")
SCHEDULE_REASONS = ("manual", "callback", "retry", "campaign")
# pending: waiting for its time; dispatched: its call was released; skipped: the rules or a hold
# refused it at claim time (skip_reason says why); cancelled: dropped before its time (a hold).
# No "claimed": a row is claimed and decided in one transaction, so that state is never seen.
SCHEDULE_STATUSES = ("pending", "dispatched", "cancelled", "skipped")
HOLD_KINDS = ("opt_out", "dispute", "wrong_number", "validation_notice")
# specs/schemas/promise_status.json; the lifecycle is in services/common/promise_tracking.py.
PROMISE_STATUSES = ("pending", "kept", "partially_kept", "broken", "cancelled")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _now() -> Any:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class Debtor(Base):
    __tablename__ = "debtors"
    __table_args__ = (
        CheckConstraint(_in("stage", STAGES), name="stage"),
        CheckConstraint("amount_owed_minor >= 0", name="amount_non_negative"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_format"),
        CheckConstraint(
            "postal_code IS NULL OR postal_code ~ '^[0-9]{5}$'", name="postal_code_format"
        ),
        Index("ix_debtors_created_at_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    external_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(16))
    # Optional: without it the calling rules use every zone the phone number could mean.
    timezone: Mapped[str | None] = mapped_column(String(64))
    stage: Mapped[str] = mapped_column(String(32))
    amount_owed_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    due_date: Mapped[date] = mapped_column(Date)
    # Optional in the API contract (DebtorCreate.account_reference may be null).
    account_reference: Mapped[str | None] = mapped_column(String(64))
    # Facts on file the agent asks for (never says) to verify the right party; write-only in
    # the API (the view lists which are on file, never the values).
    date_of_birth: Mapped[date | None] = mapped_column(Date)
    postal_code: Mapped[str | None] = mapped_column(String(5))
    metadata_: Mapped[dict[str, Any]] = mapped_column(
        "metadata", JSONB, nullable=False, server_default=sql_text("'{}'::jsonb")
    )
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class Call(Base):
    __tablename__ = "calls"
    __table_args__ = (
        CheckConstraint(_in("status", CALL_STATUSES), name="status"),
        CheckConstraint(f"outcome IS NULL OR {_in('outcome', CALL_OUTCOMES)}", name="outcome"),
        CheckConstraint(
            f"answered_by IS NULL OR {_in('answered_by', ANSWERED_BY)}", name="answered_by"
        ),
        CheckConstraint(_in("verification", VERIFICATION_LEVELS), name="verification"),
        CheckConstraint(
            f"verification_fact IS NULL OR {_in('verification_fact', VERIFICATION_FACTS)}",
            name="verification_fact",
        ),
        CheckConstraint(_in("stage", STAGES), name="stage"),
        # At most one queued or live call per debtor.
        Index(
            "uq_calls_one_live_per_debtor",
            "debtor_id",
            unique=True,
            postgresql_where=sql_text(_in("status", LIVE_CALL_STATUSES)),
        ),
        Index("ix_calls_created_at_id", "created_at", "id"),
        Index("ix_calls_debtor_id", "debtor_id"),
        Index("ix_calls_status", "status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    debtor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("debtors.id", ondelete="RESTRICT"))
    status: Mapped[str] = mapped_column(String(32), server_default="queued")
    outcome: Mapped[str | None] = mapped_column(String(32))
    stage: Mapped[str] = mapped_column(String(32))
    prompt_version: Mapped[str | None] = mapped_column(String(128))
    prompt_variant: Mapped[str | None] = mapped_column(String(32))  # prompt_variants.py; A/B
    # 1 for a trigger or an agreed callback; the retry of attempt n is attempt n + 1.
    attempt: Mapped[int] = mapped_column(Integer, server_default=sql_text("1"))
    # A retried trigger with the same key returns this call; the fingerprint detects other bodies.
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    request_fingerprint: Mapped[str | None] = mapped_column(String(64))
    twilio_call_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    metadata_: Mapped[dict[str, Any]] = mapped_column(
        "metadata", JSONB, nullable=False, server_default=sql_text("'{}'::jsonb")
    )
    failure_reason: Mapped[str | None] = mapped_column(Text)
    # Why the debtor disputes the debt, in brief (report_dispute), when the outcome is disputed.
    dispute_reason: Mapped[str | None] = mapped_column(Text)
    # What the debtor said about hardship, when the agent recorded it (report_hardship).
    hardship_note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Refreshed by the live session; the sweeper ends calls whose heartbeat went stale.
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Twilio AMD's verdict (ANSWERED_BY); None: no verdict (AMD off, or not answered).
    answered_by: Mapped[str | None] = mapped_column(String(32))
    # Right-party verification reached (VERIFICATION_LEVELS) and the fact kind given correctly.
    verification: Mapped[str] = mapped_column(String(16), server_default="none")
    verification_fact: Mapped[str | None] = mapped_column(String(16))
    # Committed before create-call: set with no twilio_call_sid means the dial's outcome is
    # unknown (a crash in between) until reconciled with Twilio's call list.
    dial_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    dial_attempts: Mapped[int] = mapped_column(Integer, server_default=sql_text("0"))
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    recording_uri: Mapped[str | None] = mapped_column(Text)
    transcript_uri: Mapped[str | None] = mapped_column(Text)
    latency: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, nullable=False, server_default=sql_text("'[]'::jsonb")
    )
    usage: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    cost: Mapped[dict[str, Any] | None] = mapped_column(JSONB)

    turns: Mapped[list[CallTurn]] = relationship(
        order_by="CallTurn.index", cascade="all, delete-orphan", lazy="raise"
    )
    # A single promise, or each installment of a plan, in installment order.
    promises: Mapped[list[PaymentPromise]] = relationship(
        order_by="PaymentPromise.installment", lazy="raise"
    )
    callback: Mapped[Callback | None] = relationship(lazy="raise", uselist=False)
    # The schedule row that placed (or will place) this call.
    schedule: Mapped[ScheduledCall | None] = relationship(
        lazy="raise", uselist=False, foreign_keys="ScheduledCall.call_id"
    )


class CallTurn(Base):
    __tablename__ = "call_turns"
    __table_args__ = (
        UniqueConstraint("call_id", "index", name="uq_call_turns_call_id_index"),
        CheckConstraint("speaker IN ('agent', 'debtor')", name="speaker"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    call_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    speaker: Mapped[str] = mapped_column(String(8))
    text: Mapped[str] = mapped_column(Text)
    state: Mapped[str | None] = mapped_column(String(32))
    interrupted: Mapped[bool] = mapped_column(Boolean, server_default=sql_text("false"))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PaymentPromise(Base):
    __tablename__ = "payment_promises"
    __table_args__ = (
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_format"),
        CheckConstraint(_in("status", PROMISE_STATUSES), name="status"),
        CheckConstraint(
            "paid_minor >= 0 AND paid_minor <= amount_minor", name="paid_within_amount"
        ),
        CheckConstraint(
            "installment >= 1 AND installment <= installments", name="installment_in_plan"
        ),
        UniqueConstraint("call_id", "installment", name="uq_payment_promises_call_id_installment"),
        Index("ix_payment_promises_created_at_public_id", "created_at", "public_id"),
        # The broken-promise pass scans only pending promises by due date.
        Index(
            "ix_payment_promises_pending_due",
            "due_date",
            postgresql_where=sql_text("status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    # One promise per call, or one per installment of the call's plan.
    call_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    installment: Mapped[int] = mapped_column(Integer, server_default=sql_text("1"))
    installments: Mapped[int] = mapped_column(Integer, server_default=sql_text("1"))
    # The plan is a settlement: paid as agreed, it settles the account although below balance.
    settlement: Mapped[bool] = mapped_column(Boolean, server_default=sql_text("false"))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    due_date: Mapped[date] = mapped_column(Date)
    recorded_at: Mapped[datetime] = _now()
    # Tracking (services/common/promise_tracking.py): the API shows `public_id` as the id.
    public_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), unique=True, server_default=sql_text("gen_random_uuid()")
    )
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    paid_minor: Mapped[int] = mapped_column(BigInteger, server_default=sql_text("0"))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _now()


class Payment(Base):
    """A payment the client reported; `reference` is its idempotency key."""

    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint(
            "unallocated_minor >= 0 AND unallocated_minor <= amount_minor",
            name="unallocated_within_amount",
        ),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_format"),
        Index("ix_payments_debtor_id", "debtor_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    debtor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("debtors.id", ondelete="RESTRICT"))
    # The promise the client named, if any.
    promise_id: Mapped[int | None] = mapped_column(
        ForeignKey("payment_promises.id", ondelete="RESTRICT")
    )
    reference: Mapped[str] = mapped_column(String(255), unique=True)
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    unallocated_minor: Mapped[int] = mapped_column(BigInteger)
    paid_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _now()

    allocations: Mapped[list[PaymentAllocation]] = relationship(
        order_by="PaymentAllocation.id", lazy="raise", cascade="all, delete-orphan"
    )


class PaymentAllocation(Base):
    __tablename__ = "payment_allocations"
    __table_args__ = (
        UniqueConstraint(
            "payment_id", "promise_id", name="uq_payment_allocations_payment_id_promise_id"
        ),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        Index("ix_payment_allocations_promise_id", "promise_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    payment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("payments.id", ondelete="CASCADE"))
    promise_id: Mapped[int] = mapped_column(ForeignKey("payment_promises.id", ondelete="RESTRICT"))
    amount_minor: Mapped[int] = mapped_column(BigInteger)


class Callback(Base):
    __tablename__ = "callbacks"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    call_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("calls.id", ondelete="CASCADE"), unique=True
    )
    scheduled_for: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str | None] = mapped_column(String(500))
    events: Mapped[list[str]] = mapped_column(JSONB)
    # Encrypted at rest (Fernet); the plaintext is shown once, at creation.
    secret_ciphertext: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, server_default=sql_text("true"))
    created_at: Mapped[datetime] = _now()


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # One delivery per event and endpoint, however often the event is redelivered.
        UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_deliveries_endpoint_event"),
        CheckConstraint(_in("status", DELIVERY_STATUSES), name="status"),
        Index("ix_webhook_deliveries_created_at_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    event_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    attempt_count: Mapped[int] = mapped_column(Integer, server_default=sql_text("0"))
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()

    attempts: Mapped[list[WebhookAttempt]] = relationship(
        order_by="WebhookAttempt.attempt", lazy="raise"
    )


class WebhookAttempt(Base):
    __tablename__ = "webhook_attempts"
    __table_args__ = (
        UniqueConstraint("delivery_id", "attempt", name="uq_webhook_attempts_delivery_attempt"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    delivery_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE")
    )
    attempt: Mapped[int] = mapped_column(Integer)
    attempted_at: Mapped[datetime] = _now()
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)


class OutboxMessage(Base):
    """An event committed with the business change that caused it; the relay publishes it."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index(
            "ix_outbox_unpublished",
            "id",
            postgresql_where=sql_text("published_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(255))
    ce_id: Mapped[str] = mapped_column(String(64), unique=True)
    ce_type: Mapped[str] = mapped_column(String(128))
    ce_source: Mapped[str] = mapped_column(String(255))
    ce_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = _now()
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A row whose publish failed waits this long before the next try, so one bad row (or a
    # Pub/Sub outage) never blocks the rows behind it.
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)


class ScheduledCall(Base):
    """One intended dial with its earliest time: the Call Scheduler's durable schedule."""

    __tablename__ = "scheduled_calls"
    __table_args__ = (
        CheckConstraint(_in("reason", SCHEDULE_REASONS), name="reason"),
        CheckConstraint(_in("status", SCHEDULE_STATUSES), name="status"),
        CheckConstraint("attempt >= 1", name="attempt_positive"),
        # The worker's claim query: due pending rows, oldest first.
        Index(
            "ix_scheduled_calls_pending_not_before",
            "not_before",
            postgresql_where=sql_text("status = 'pending'"),
        ),
        Index("ix_scheduled_calls_debtor_id", "debtor_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    debtor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("debtors.id", ondelete="RESTRICT"))
    # The call this row places: set at trigger time (manual) or when dispatched (retry, callback).
    # One row per call.
    call_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("calls.id", ondelete="CASCADE"), unique=True
    )
    # The ended call this row follows up (retry, callback): one follow-up per call.
    source_call_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("calls.id", ondelete="CASCADE"), unique=True
    )
    reason: Mapped[str] = mapped_column(String(16))
    debtor_requested: Mapped[bool] = mapped_column(Boolean, server_default=sql_text("false"))
    not_before: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    skip_reason: Mapped[str | None] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer, server_default=sql_text("1"))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set by an operator's retry with override (POST /v1/calls/{id}/retry): at claim time the
    # worker places the call without re-checking holds and the calling rules.
    override_reason: Mapped[str | None] = mapped_column(Text)


class DebtorHold(Base):
    """Opt-out, dispute or wrong number: no call to the debtor until an operator lifts it."""

    __tablename__ = "debtor_holds"
    __table_args__ = (
        CheckConstraint(_in("kind", HOLD_KINDS), name="kind"),
        CheckConstraint("(lifted_at IS NULL) = (lifted_reason IS NULL)", name="lift_has_reason"),
        # One active hold of each kind per debtor.
        Index(
            "uq_debtor_holds_active_kind",
            "debtor_id",
            "kind",
            unique=True,
            postgresql_where=sql_text("lifted_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    debtor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("debtors.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    # The call in which the debtor said so; None for a hold placed another way.
    call_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _now()
    lifted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lifted_reason: Mapped[str | None] = mapped_column(Text)


class ProcessedMessage(Base):
    """Pub/Sub messages a consumer has handled, keyed by CloudEvents `ce-id`."""

    __tablename__ = "processed_messages"

    consumer: Mapped[str] = mapped_column(String(128), primary_key=True)
    ce_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    processed_at: Mapped[datetime] = _now()


# The V1 tables live in their own modules (each imports `Base` from here); importing them last
# puts them on `Base.metadata` for Alembic and the services.
from services.common.models import call_steps, campaigns, imports, operator  # noqa: E402

__all__ = ["call_steps", "campaigns", "imports", "operator"]
