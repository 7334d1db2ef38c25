"""Outcomes `hung_up` and `no_response` (issue 19 item 7).

A person hanging up before any outcome was `refused` when verified and `failed` when not; a
line that stayed silent through the re-prompts was `failed` too. `refused` now means only the
debtor declining, `failed` only our own faults; the two new outcomes join the check. Existing
rows keep their outcome: which of them were hang-ups is not recorded.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 18:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The outcomes as 0007 left them.
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
)


def _in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _check(values: Sequence[str]) -> None:
    op.drop_constraint(op.f("ck_calls_outcome"), "calls", type_="check")
    op.create_check_constraint(
        op.f("ck_calls_outcome"), "calls", f"outcome IS NULL OR {_in('outcome', values)}"
    )


def upgrade() -> None:
    _check((*_OUTCOMES, "hung_up", "no_response"))


def downgrade() -> None:
    # Before 0014 both were recorded as a failed attempt.
    op.execute("UPDATE calls SET outcome = 'failed' WHERE outcome IN ('hung_up', 'no_response')")
    _check(_OUTCOMES)
