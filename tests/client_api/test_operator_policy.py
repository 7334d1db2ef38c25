"""Pure decisions of the operator controls (no I/O): retry and cancel plans, the scheduler's
claim of an overridden row, and the labelled API keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr, ValidationError

from services.call_scheduler.decide import ClaimView, Dispatch, Reschedule, Skip, decide_claim
from services.client_api.auth import api_key_label
from services.client_api.operator_policy import (
    CancelCall,
    CancelFollowUps,
    Hold,
    Refusal,
    RetryAt,
    plan_cancel,
    plan_retry,
)
from services.common.calling_rules import Allowed, Refused
from services.common.settings import Settings, labelled_api_keys

NOW = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=14)
HOLD = Hold("opt_out", "the debtor asked not to be called again")


def retry(**kw: object) -> RetryAt | Refusal:
    args: dict[str, object] = {
        "call_status": "no_answer",
        "other_live_call": False,
        "holds": [],
        "verdict": Allowed(NOW),
        "now": NOW,
        "override": False,
    }
    args.update(kw)
    return plan_retry(**args)  # type: ignore[arg-type]


def test_retry_follows_the_rules_without_override() -> None:
    assert retry() == RetryAt(NOW, ())
    assert retry(verdict=Allowed(LATER)) == RetryAt(LATER, ())
    assert retry(verdict=Allowed(NOW - timedelta(minutes=1))) == RetryAt(NOW, ())
    refused = retry(verdict=Refused("the debtor's time zone is unknown"))
    assert isinstance(refused, Refusal) and refused.type == "urn:problem:call-not-allowed"
    held = retry(holds=[HOLD])
    assert isinstance(held, Refusal) and held.type == "urn:problem:debtor-on-hold"
    assert "opt_out" in held.detail


@pytest.mark.parametrize("status", ["queued", "dispatched", "dialing", "ringing", "in_progress"])
def test_a_live_call_is_never_retried_even_with_override(status: str) -> None:
    plan = retry(call_status=status, override=True)
    assert isinstance(plan, Refusal) and plan.type == "urn:problem:call-not-ended"


def test_override_places_now_and_lists_what_it_set_aside() -> None:
    assert retry(override=True) == RetryAt(NOW, ())  # nothing in the way
    waited = retry(override=True, verdict=Allowed(LATER))
    assert waited == RetryAt(NOW, ("calling rules: not before 2026-12-05T08:00:00Z",))
    both = retry(override=True, holds=[HOLD], verdict=Refused("cap reached"))
    assert both == RetryAt(
        NOW, ("hold opt_out: the debtor asked not to be called again", "calling rules: cap reached")
    )
    busy = retry(override=True, other_live_call=True)
    assert isinstance(busy, Refusal) and busy.type == "urn:problem:call-already-active"


def test_cancel_plans() -> None:
    assert plan_cancel("queued", 0) == CancelCall()
    assert plan_cancel("dispatched", 0) == CancelCall()
    for status in ("dialing", "ringing", "in_progress"):
        plan = plan_cancel(status, 1)
        assert isinstance(plan, Refusal) and plan.type == "urn:problem:call-already-placed"
    assert plan_cancel("no_answer", 1) == CancelFollowUps()
    nothing = plan_cancel("completed", 0)
    assert isinstance(nothing, Refusal) and nothing.type == "urn:problem:nothing-to-cancel"


def claim(**kw: object) -> ClaimView:
    args: dict[str, object] = {
        "reason": "retry",
        "call_status": "queued",
        "has_call": True,
        "debtor_exists": True,
        "holds": (),
        "other_live_call": False,
        "verdict": Allowed(NOW),
        "now": NOW,
    }
    args.update(kw)
    return ClaimView(**args)  # type: ignore[arg-type]


def test_the_claim_sets_holds_and_rules_aside_only_for_an_override() -> None:
    assert isinstance(decide_claim(claim(holds=("dispute",))), Skip)
    assert isinstance(decide_claim(claim(verdict=Refused("cap"))), Skip)
    assert decide_claim(claim(verdict=Allowed(LATER))) == Reschedule(LATER)
    for view in (
        claim(holds=("dispute",), override=True),
        claim(verdict=Refused("cap"), override=True),
        claim(verdict=Allowed(LATER), override=True),
    ):
        assert decide_claim(view) == Dispatch()
    # Never for a call no longer queued, or when another call to the debtor is live.
    assert isinstance(decide_claim(claim(call_status="canceled", override=True)), Skip)
    assert isinstance(decide_claim(claim(other_live_call=True, override=True)), Skip)


def test_labelled_api_keys() -> None:
    s = Settings(api_key=SecretStr("main-key"), api_keys=SecretStr(" ops=k1 , acme=k2,"))
    assert labelled_api_keys(s) == {"default": "main-key", "ops": "k1", "acme": "k2"}
    assert api_key_label("Bearer k2", s) == "acme"
    assert api_key_label("bearer main-key", s) == "default"
    assert api_key_label("Bearer k3", s) is None
    assert api_key_label("Basic k1", s) is None
    assert api_key_label(None, s) is None
    for bad in ("ops", "ops=", "=k1", "default=k9", "ops=k1,ops=k2", "a=k1,b=k1", "a b=k1"):
        with pytest.raises(ValidationError, match="API_KEYS"):
            Settings(api_key=SecretStr("main-key"), api_keys=SecretStr(bad))
    with pytest.raises(ValidationError, match="API_KEYS"):
        Settings(api_key=SecretStr("k1"), api_keys=SecretStr("ops=k1"))  # API_KEY's key
    with pytest.raises(ValidationError) as raised:  # a key pasted without its label
        Settings(api_key=SecretStr("main-key"), api_keys=SecretStr("s3cret-key-value"))
    assert "s3cret" not in str(raised.value)
