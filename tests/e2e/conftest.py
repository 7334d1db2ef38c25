"""One deployment and one run of every persona for the whole e2e package (see harness.py).

Package scope (tests/e2e has an __init__.py): the deployment is stopped after the last e2e test,
not kept running through the rest of the suite.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from .harness import E2ERun, Run, place_all, start_run
from .sdk import generate_sdk


@pytest.fixture(scope="package")
def e2e_run() -> Iterator[E2ERun]:
    deployment, receiver, keys = start_run()
    sdk = generate_sdk(deployment.out / "sdk")
    deployment.start()
    receiver.start()
    try:
        yield asyncio.run(place_all(deployment, receiver, keys, sdk))
    finally:
        receiver.stop()
        deployment.stop()


@pytest.fixture(scope="package")
def runs(e2e_run: E2ERun) -> dict[str, Run]:
    return e2e_run.runs
