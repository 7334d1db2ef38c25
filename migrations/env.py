"""Alembic environment: async engine (asyncpg), metadata from services.common.models."""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from services.common.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    # An explicit URL set by the caller (tests, scripts) wins over the environment.
    url = config.get_main_option("sqlalchemy.url")
    env_url = os.environ.get("DATABASE_URL")
    if env_url and (url is None or "127.0.0.1:5432" in url):
        return env_url
    assert url is not None
    return url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def _do_run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    engine = create_async_engine(_url())
    async with engine.connect() as connection:
        await connection.run_sync(_do_run)
    await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
