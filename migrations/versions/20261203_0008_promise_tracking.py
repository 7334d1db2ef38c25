"""Payment promise tracking (issue 18): promise status, payments and their allocations.

`payment_promises` gains a stable public id, a status (`pending`, `kept`, `partially_kept`,
`broken`, `cancelled`), the amount paid against it, when it was resolved and a `created_at`
for keyset pagination. Existing promises start `pending`, nothing paid. `payments` holds each
payment the client reported (unique `reference`: the idempotency key) and `payment_allocations`
how much of it went to which promise.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATUSES = ("pending", "kept", "partially_kept", "broken", "cancelled")


def upgrade() -> None:
    op.add_column(
        "payment_promises",
        sa.Column(
            "public_id",
            postgresql.UUID(as_uuid=True),
            server_default=sa.text("gen_random_uuid()"),
            nullable=False,
        ),
    )
    op.create_unique_constraint(
        op.f("uq_payment_promises_public_id"), "payment_promises", ["public_id"]
    )
    op.add_column(
        "payment_promises",
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_payment_promises_status"),
        "payment_promises",
        f"status IN ({', '.join(repr(s) for s in _STATUSES)})",
    )
    op.add_column(
        "payment_promises",
        sa.Column("paid_minor", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_payment_promises_paid_within_amount"),
        "payment_promises",
        "paid_minor >= 0 AND paid_minor <= amount_minor",
    )
    op.add_column(
        "payment_promises", sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "payment_promises",
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    )
    op.execute("UPDATE payment_promises SET created_at = recorded_at")
    op.create_index(
        "ix_payment_promises_created_at_public_id",
        "payment_promises",
        ["created_at", "public_id"],
    )
    # The broken-promise pass scans only pending promises by due date.
    op.create_index(
        "ix_payment_promises_pending_due",
        "payment_promises",
        ["due_date"],
        postgresql_where=sa.text("status = 'pending'"),
    )

    op.create_table(
        "payments",
        sa.Column("id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("debtor_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("promise_id", sa.BigInteger(), nullable=True),
        sa.Column("reference", sa.String(length=255), nullable=False),
        sa.Column("request_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("unallocated_minor", sa.BigInteger(), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_payments_amount_positive")),
        sa.CheckConstraint(
            "unallocated_minor >= 0 AND unallocated_minor <= amount_minor",
            name=op.f("ck_payments_unallocated_within_amount"),
        ),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name=op.f("ck_payments_currency_format")),
        sa.ForeignKeyConstraint(
            ["debtor_id"],
            ["debtors.id"],
            name=op.f("fk_payments_debtor_id_debtors"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["promise_id"],
            ["payment_promises.id"],
            name=op.f("fk_payments_promise_id_payment_promises"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint("reference", name=op.f("uq_payments_reference")),
    )
    op.create_index("ix_payments_debtor_id", "payments", ["debtor_id"])
    op.create_table(
        "payment_allocations",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("payment_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("promise_id", sa.BigInteger(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_payment_allocations_amount_positive")),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
            name=op.f("fk_payment_allocations_payment_id_payments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["promise_id"],
            ["payment_promises.id"],
            name=op.f("fk_payment_allocations_promise_id_payment_promises"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_allocations")),
        sa.UniqueConstraint(
            "payment_id", "promise_id", name=op.f("uq_payment_allocations_payment_id_promise_id")
        ),
    )
    op.create_index("ix_payment_allocations_promise_id", "payment_allocations", ["promise_id"])


def downgrade() -> None:
    op.drop_table("payment_allocations")
    op.drop_table("payments")
    op.drop_index("ix_payment_promises_pending_due", table_name="payment_promises")
    op.drop_index("ix_payment_promises_created_at_public_id", table_name="payment_promises")
    op.drop_column("payment_promises", "created_at")
    op.drop_column("payment_promises", "resolved_at")
    op.drop_constraint(
        op.f("ck_payment_promises_paid_within_amount"), "payment_promises", type_="check"
    )
    op.drop_column("payment_promises", "paid_minor")
    op.drop_constraint(op.f("ck_payment_promises_status"), "payment_promises", type_="check")
    op.drop_column("payment_promises", "status")
    op.drop_constraint(op.f("uq_payment_promises_public_id"), "payment_promises", type_="unique")
    op.drop_column("payment_promises", "public_id")
