"""Per-step call events (issue 18 item 7): `call_step_events`.

One row per step of a call (scheduled, dispatched, dialing, ..., webhook delivered), with its
time, a reason for failures and skips, and a JSON detail (specs/schemas/call_step_event.json).
`sequence` orders rows with the same time; `once_key` keeps a step reported twice to one row.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 18:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# specs/schemas/call_step.json and call_step_reason.json
_STEPS = (
    "scheduled",
    "rescheduled",
    "skipped",
    "dispatched",
    "dialing",
    "dial_failed",
    "ringing",
    "answered",
    "amd_result",
    "verified",
    "verification_failed",
    "disclosure_spoken",
    "tool_call",
    "ended",
    "recording_stored",
    "recording_failed",
    "webhook_delivered",
    "webhook_failed",
)
_REASONS = (
    "debtor_on_hold",
    "calling_rules",
    "superseded",
    "unknown_debtor",
    "request_lost",
    "operator_canceled",
    "campaign_canceled",
    "twilio_rejected",
    "busy",
    "no_answer",
    "twilio_failed",
    "twilio_canceled",
    "media_never_connected",
    "session_vanished",
    "dial_lost",
    "llm_failure",
    "stt_failure",
    "tts_failure",
    "internal_error",
    "fact_not_matched",
    "call_finished",
    "unknown_tool",
    "not_allowed_in_state",
    "invalid_arguments",
    "not_verified",
    "disclosure_not_heard",
    "nothing_said_yet",
    "currency_mismatch",
    "amount_above_balance",
    "date_in_past",
    "date_too_late",
    "callback_reason_missing",
    "callback_in_past",
    "callback_too_far",
    "outside_calling_hours",
    "closing_other_outcome",
    "no_outcome_yet",
    "upload_failed",
    "http_error",
    "timeout",
    "connection_error",
    "endpoint_inactive",
    "secret_unreadable",
)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "call_step_events",
        sa.Column("id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("sequence", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("call_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("step", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=48), nullable=True),
        sa.Column(
            "detail",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("once_key", sa.String(length=128), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(_in("step", _STEPS), name=op.f("ck_call_step_events_step")),
        sa.CheckConstraint(_in("reason", _REASONS), name=op.f("ck_call_step_events_reason")),
        sa.ForeignKeyConstraint(
            ["call_id"],
            ["calls.id"],
            name=op.f("fk_call_step_events_call_id_calls"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_step_events")),
        sa.UniqueConstraint("sequence", name=op.f("uq_call_step_events_sequence")),
        sa.UniqueConstraint(
            "call_id", "once_key", name=op.f("uq_call_step_events_call_id_once_key")
        ),
    )
    op.create_index(
        "ix_call_step_events_call_id_at_sequence",
        "call_step_events",
        ["call_id", "at", "sequence"],
    )


def downgrade() -> None:
    op.drop_index("ix_call_step_events_call_id_at_sequence", table_name="call_step_events")
    op.drop_table("call_step_events")
