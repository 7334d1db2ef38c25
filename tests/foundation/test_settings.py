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
