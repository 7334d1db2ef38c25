"""Session-wide real components: PostgreSQL, the Pub/Sub emulator and a GCS emulator.

Started once per test session on free ports (nothing needs to run beforehand) and stopped at the
end. Tests that need a clean slate create their own rows with fresh ids rather than truncating.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from scripts.localstack import LocalStack
from services.common.db import create_engine, session_factory
from services.common.settings import Settings


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Keep each test package together after pytest-randomly's shuffle.

    pytest-randomly shuffles modules across the whole session; a package-scoped fixture (the
    e2e and reliability deployments) would then be started again each time its package came
    back. A stable sort on each package's first position keeps the random order of packages,
    of modules within a package and of tests within a module.
    """
    first: dict[Path, int] = {}
    for i, item in enumerate(items):
        first.setdefault(item.path.parent, i)
    items.sort(key=lambda item: first[item.path.parent])


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    work = Path(tempfile.mkdtemp(prefix="collections-test-stack-"))
    s = LocalStack(work)
    try:
        s.start()
        old = {k: os.environ.get(k) for k in s.env()}
        os.environ.update(s.env())
        yield s
    finally:
        s.stop()
        for k, v in locals().get("old", {}).items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="session")
def settings(stack: LocalStack) -> Settings:
    return stack.settings()  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(settings)
    yield eng
    await eng.dispose()


@pytest.fixture(scope="session")
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)
