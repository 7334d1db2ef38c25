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
