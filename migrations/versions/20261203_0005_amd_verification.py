"""Answering-machine detection and second-factor verification (issue 17, AMD helper).

`calls.answered_by` keeps Twilio AMD's verdict; the outcomes `voicemail_left` (a limited-content
message was left on a machine) and `machine` (a machine or fax, nothing left) join the check.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

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
)
_NEW_OUTCOMES = ("voicemail_left", "machine")
_ANSWERED_BY = (
    "human",
    "machine_start",
    "machine_end_beep",
    "machine_end_silence",
    "machine_end_other",
    "fax",
    "unknown",
)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.add_column("calls", sa.Column("answered_by", sa.String(length=32), nullable=True))
    op.create_check_constraint(
        op.f("ck_calls_answered_by"),
        "calls",
        f"answered_by IS NULL OR {_in('answered_by', _ANSWERED_BY)}",
    )
    op.drop_constraint(op.f("ck_calls_outcome"), "calls", type_="check")
    op.create_check_constraint(
        op.f("ck_calls_outcome"),
        "calls",
        f"outcome IS NULL OR {_in('outcome', _OUTCOMES + _NEW_OUTCOMES)}",
    )


def downgrade() -> None:
    # Before 0005 every machine was `voicemail`.
    op.execute(
        "UPDATE calls SET outcome = 'voicemail' WHERE outcome IN ('voicemail_left', 'machine')"
    )
    op.drop_constraint(op.f("ck_calls_outcome"), "calls", type_="check")
    op.create_check_constraint(
        op.f("ck_calls_outcome"), "calls", f"outcome IS NULL OR {_in('outcome', _OUTCOMES)}"
    )
    op.drop_constraint(op.f("ck_calls_answered_by"), "calls", type_="check")
    op.drop_column("calls", "answered_by")
