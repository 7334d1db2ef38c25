"""Payment plans and the answers to objections (issue 20).

- `payment_promises`: one row per installment of a call's plan (`installment` of
  `installments`, `settlement` when the client's settlement terms apply); a single promise is
  1 of 1. The one-promise-per-call unique becomes one per (call, installment).
- `calls.hardship_note`: what the debtor said about hardship, when the agent recorded it.
- `campaigns.negotiation_rules`: the campaign's own terms (null: the stage's defaults).
- Outcome `validation_notice_requested` and hold kind `validation_notice` (`debtor_holds.kind`
  widened: the new kind is 17 characters).
- The call step reasons of refused payment terms join `call_step_events`' reason check.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 23:00:00
"""

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The outcomes and hold kinds as 0014 and 0004 left them.
_OUTCOMES = (
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
)
_HOLD_KINDS = ("opt_out", "dispute", "wrong_number")
# The payment-terms refusals (specs/schemas/call_step_reason.json), new in 0016.
_TERMS_REASONS = (
    "first_payment_too_small",
    "first_payment_too_late",
    "too_many_installments",
    "plan_too_long",
    "plan_total_short",
    "plan_total_above_balance",
    "installments_out_of_order",
    "settlement_not_offered",
    "settlement_below_floor",
)


def _in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _checks(outcomes: Sequence[str], kinds: Sequence[str]) -> None:
    op.drop_constraint(op.f("ck_calls_outcome"), "calls", type_="check")
    op.create_check_constraint(
        op.f("ck_calls_outcome"), "calls", f"outcome IS NULL OR {_in('outcome', outcomes)}"
    )
    op.drop_constraint(op.f("ck_debtor_holds_kind"), "debtor_holds", type_="check")
    op.create_check_constraint(op.f("ck_debtor_holds_kind"), "debtor_holds", _in("kind", kinds))


def _step_reasons(with_terms: bool) -> None:
    # 0011's list, in the spec's order: the new reasons follow `date_too_late`.
    before = [
        r[0]
        for r in op.get_bind().execute(
            sa.text(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
                " WHERE conname = 'ck_call_step_events_reason'"
            )
        )
    ]
    assert before, "ck_call_step_events_reason missing"
    reasons = [v for v in _quoted(before[0]) if v not in _TERMS_REASONS]
    if with_terms:
        at = reasons.index("date_too_late") + 1
        reasons[at:at] = _TERMS_REASONS
    op.drop_constraint(op.f("ck_call_step_events_reason"), "call_step_events", type_="check")
    op.create_check_constraint(
        op.f("ck_call_step_events_reason"),
        "call_step_events",
        _in("reason", reasons),
    )


def _quoted(definition: str) -> list[str]:
    """The string literals of a CHECK's definition, in order."""
    return re.findall(r"'([a-z_0-9]+)'", definition)


def upgrade() -> None:
    op.alter_column("debtor_holds", "kind", type_=sa.String(32), existing_type=sa.String(16))
    _step_reasons(with_terms=True)
    op.add_column(
        "payment_promises",
        sa.Column("installment", sa.Integer(), server_default=sa.text("1"), nullable=False),
    )
    op.add_column(
        "payment_promises",
        sa.Column("installments", sa.Integer(), server_default=sa.text("1"), nullable=False),
    )
    op.add_column(
        "payment_promises",
        sa.Column("settlement", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.drop_constraint(op.f("uq_payment_promises_call_id"), "payment_promises", type_="unique")
    op.create_unique_constraint(
        "uq_payment_promises_call_id_installment", "payment_promises", ["call_id", "installment"]
    )
    op.create_check_constraint(
        op.f("ck_payment_promises_installment_in_plan"),
        "payment_promises",
        "installment >= 1 AND installment <= installments",
    )
    op.add_column("calls", sa.Column("hardship_note", sa.Text(), nullable=True))
    op.add_column(
        "campaigns",
        sa.Column("negotiation_rules", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    _checks((*_OUTCOMES, "validation_notice_requested"), (*_HOLD_KINDS, "validation_notice"))


def downgrade() -> None:
    # Before 0016 a plan could not be recorded: keep each call's first installment only.
    op.execute("DELETE FROM payment_promises WHERE installment > 1")
    op.execute("UPDATE calls SET outcome = 'refused' WHERE outcome = 'validation_notice_requested'")
    op.execute("DELETE FROM debtor_holds WHERE kind = 'validation_notice'")
    op.execute(f"DELETE FROM call_step_events WHERE {_in('reason', _TERMS_REASONS)}")
    _checks(_OUTCOMES, _HOLD_KINDS)
    _step_reasons(with_terms=False)
    op.alter_column("debtor_holds", "kind", type_=sa.String(16), existing_type=sa.String(32))
    op.drop_column("campaigns", "negotiation_rules")
    op.drop_column("calls", "hardship_note")
    op.drop_constraint(
        op.f("ck_payment_promises_installment_in_plan"), "payment_promises", type_="check"
    )
    op.drop_constraint("uq_payment_promises_call_id_installment", "payment_promises", "unique")
    op.create_unique_constraint(
        op.f("uq_payment_promises_call_id"), "payment_promises", ["call_id"]
    )
    op.drop_column("payment_promises", "settlement")
    op.drop_column("payment_promises", "installments")
    op.drop_column("payment_promises", "installment")
