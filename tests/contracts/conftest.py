"""Fixtures of the contract tests; helpers live in contract_support.py."""

from __future__ import annotations

from typing import Any

import pytest
from contract_support import ASYNCAPI_PATH, FIXTURES, OPENAPI_PATH, load_json, load_yaml


@pytest.fixture(scope="session")
def openapi_doc() -> dict[str, Any]:
    return load_yaml(OPENAPI_PATH)


@pytest.fixture(scope="session")
def asyncapi_doc() -> dict[str, Any]:
    return load_yaml(ASYNCAPI_PATH)


@pytest.fixture
def sample_event() -> dict[str, Any]:
    """A realistic `call.completed` webhook body (fresh copy per test)."""
    return load_json(FIXTURES / "call_completed_event.json")
