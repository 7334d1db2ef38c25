"""`.env.example` lists every setting the services read."""

from __future__ import annotations

from pathlib import Path

from services.common.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_env_example_lists_every_setting() -> None:
    listed = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    expected = {name.upper() for name in Settings.model_fields}
    assert expected - listed == set(), "missing from .env.example"
    assert listed - expected == set(), "stale in .env.example"


def test_production_refuses_failpoints_and_an_open_push_endpoint() -> None:
    import pytest
    from pydantic import SecretStr, ValidationError

    from services.common.settings import Settings

    with pytest.raises(ValidationError, match="FAILPOINTS"):
        Settings(environment="production", failpoints="outbox.before_publish")
    with pytest.raises(ValidationError, match="PUBSUB_PUSH_TOKEN"):
        Settings(environment="production", pubsub_delivery="push")
    with pytest.raises(ValidationError, match="PUBSUB_PUSH_TOKEN"):
        Settings(environment="production", pubsub_delivery="push", pubsub_push_token=SecretStr(""))
    ok = Settings(
        environment="production", pubsub_delivery="push", pubsub_push_token=SecretStr("s3cret")
    )
    assert ok.pubsub_push_token is not None
    # Locally both are allowed: crash tests arm failpoints, the push token is optional.
    assert Settings(environment="local", failpoints="outbox.before_publish").failpoints


def test_negotiation_rules_overrides_are_checked_at_start_up() -> None:
    import pytest
    from pydantic import ValidationError

    from generated.delinquency_stage import DelinquencyStage
    from services.common.negotiation import DEFAULT_RULES, stage_rules

    with pytest.raises(ValidationError, match="not JSON"):
        Settings(negotiation_rules="{late:")
    with pytest.raises(ValidationError, match="unknown stage 'later'"):
        Settings(negotiation_rules='{"later": {"max_installments": 2}}')
    with pytest.raises(ValidationError, match="early: max_installments"):
        Settings(negotiation_rules='{"early": {"max_installments": 0}}')
    # Each field fits, but no plan could: it would end before its first payment may fall due.
    with pytest.raises(ValidationError, match="late: max_plan_days: must be at least"):
        Settings(negotiation_rules='{"late": {"max_plan_days": 3}}')
    with pytest.raises(ValidationError, match="max_plan_days: must be above 0"):
        Settings(
            negotiation_rules='{"pre_delinquency": {"latest_first_payment_days": 0, '
            '"max_plan_days": 0}}'
        )
    changed = stage_rules(Settings(negotiation_rules='{"late": {"settlement_floor_bp": 6000}}'))
    assert changed[DelinquencyStage.LATE].settlement_floor_bp == 6000
    assert changed[DelinquencyStage.LATE].max_installments == 12  # the rest stays the default
    assert changed[DelinquencyStage.EARLY] == DEFAULT_RULES[DelinquencyStage.EARLY]
