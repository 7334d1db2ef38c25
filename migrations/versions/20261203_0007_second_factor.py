"""Second-factor verification facts on the debtor (issue 17, verification helper).

`debtors.date_of_birth` and `debtors.postal_code` are facts on file the agent asks for (never
says) to verify the right party; `calls.verification` (`none`, `name_only`, `name_and_fact`)
and `calls.verification_fact` record how far the person was verified; the outcome `unverified`
(the fact was answered wrongly twice, nothing disclosed) joins the outcome check.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The outcomes as 0005 left them.
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
)
_LEVELS = ("none", "name_only", "name_and_fact")
_FACTS = ("date_of_birth", "postal_code", "account_last4")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.add_column("debtors", sa.Column("date_of_birth", sa.Date(), nullable=True))
    op.add_column("debtors", sa.Column("postal_code", sa.String(length=5), nullable=True))
    op.create_check_constraint(
        op.f("ck_debtors_postal_code_format"),
        "debtors",
        "postal_code IS NULL OR postal_code ~ '^[0-9]{5}$'",
    )
    op.add_column(
        "calls",
        sa.Column("verification", sa.String(length=16), server_default="none", nullable=False),
    )
    op.add_column("calls", sa.Column("verification_fact", sa.String(length=16), nullable=True))
    op.create_check_constraint(op.f("ck_calls_verification"), "calls", _in("verification", _LEVELS))
    op.create_check_constraint(
        op.f("ck_calls_verification_fact"),
        "calls",
        f"verification_fact IS NULL OR {_in('verification_fact', _FACTS)}",
    )
    op.drop_constraint(op.f("ck_calls_outcome"), "calls", type_="check")
    op.create_check_constraint(
        op.f("ck_calls_outcome"),
        "calls",
        f"outcome IS NULL OR {_in('outcome', (*_OUTCOMES, 'unverified'))}",
    )


def downgrade() -> None:
    # Before 0007 a call nobody was verified on ended as a failed attempt.
    op.execute("UPDATE calls SET outcome = 'failed' WHERE outcome = 'unverified'")
    op.drop_constraint(op.f("ck_calls_outcome"), "calls", type_="check")
    op.create_check_constraint(
        op.f("ck_calls_outcome"), "calls", f"outcome IS NULL OR {_in('outcome', _OUTCOMES)}"
    )
    op.drop_constraint(op.f("ck_calls_verification_fact"), "calls", type_="check")
    op.drop_constraint(op.f("ck_calls_verification"), "calls", type_="check")
    op.drop_column("calls", "verification_fact")
    op.drop_column("calls", "verification")
    op.drop_constraint(op.f("ck_debtors_postal_code_format"), "debtors", type_="check")
    op.drop_column("debtors", "postal_code")
    op.drop_column("debtors", "date_of_birth")
