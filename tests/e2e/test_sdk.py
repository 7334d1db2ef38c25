"""A client generated from specs/openapi/client-api.yaml runs a campaign on the live deployment
(see sdk.py): import debtors into a campaign, start it, report a payment, read the stats."""

from __future__ import annotations

from .harness import E2ERun
from .sdk import PERSONAS


def test_the_import_created_every_row_and_assigned_them(e2e_run: E2ERun) -> None:
    job = e2e_run.sdk.imported
    assert job.status.value == "completed"
    counts = job.counts
    assert (counts.rows_total, counts.created, counts.failed) == (len(PERSONAS), len(PERSONAS), 0)
    assert job.campaign_id == e2e_run.sdk.campaign.id


def test_the_campaign_completed_with_every_item_called(e2e_run: E2ERun) -> None:
    run = e2e_run.sdk
    assert run.campaign.status.value == "completed"
    assert run.campaign.items.done == len(PERSONAS) == len(run.items)
    assert {c.status.value for c in run.calls} == {"completed"}
    assert {c.outcome.value for c in run.calls} == {"promise_to_pay"}
    # Sticky, weighted variants: each call records the one its debtor was given.
    assert {c.prompt_variant for c in run.calls} <= {"default", "plan_first"}


def test_the_payment_kept_the_promise_and_the_stats_count_it(e2e_run: E2ERun) -> None:
    run = e2e_run.sdk
    assert run.payment.amount.to_dict() == run.promise_paid.amount.to_dict()
    assert run.promise_paid.status.value == "kept"
    total = run.stats.total
    assert total.calls_placed == total.connected_calls == len(PERSONAS)
    assert total.promises == len(PERSONAS) and total.promises_kept == 1
    # Rates in basis points: every connected debtor promised.
    assert total.connection_rate_bp == total.promise_rate_bp == 10_000
    by_variant = {v.variant: v.funnel.calls_placed for v in run.stats.variants}
    assert sum(by_variant.values()) == total.calls_placed
