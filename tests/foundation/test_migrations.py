"""Alembic upgrade to head and downgrade to base on real PostgreSQL, in a scratch database."""

from __future__ import annotations

import asyncio
import subprocess
import uuid

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from scripts.localstack import LocalStack, alembic_config
from services.common.models import Base


def _scratch_db(stack: LocalStack) -> str:
    name = f"mig_{uuid.uuid4().hex[:8]}"
    subprocess.run(
        [
            str(stack.postgres.bin / "createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(stack.postgres.port),
            "-U",
            "postgres",
            name,
        ],
        check=True,
    )
    return f"postgresql+asyncpg://postgres@127.0.0.1:{stack.postgres.port}/{name}"


def test_upgrade_head_then_downgrade_base(stack: LocalStack) -> None:
    url = _scratch_db(stack)
    cfg = alembic_config(url)
    command.upgrade(cfg, "head")
    tables = _list_tables(stack, url)
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables
    command.downgrade(cfg, "base")
    assert _list_tables(stack, url) == {"alembic_version"}
    # And up again: the downgrade left nothing behind that breaks a second upgrade.
    command.upgrade(cfg, "head")
    assert set(Base.metadata.tables) <= _list_tables(stack, url)


def test_models_match_migrations(stack: LocalStack) -> None:
    """The ORM models and the migration describe the same schema (no pending autogenerate)."""

    url = _scratch_db(stack)
    command.upgrade(alembic_config(url), "head")

    async def diff() -> list[object]:
        eng = create_async_engine(url)
        async with eng.connect() as conn:
            result = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata)
            )
        await eng.dispose()
        return list(result)

    assert asyncio.run(diff()) == []


def _list_tables(stack: LocalStack, url: str) -> set[str]:
    db = url.rsplit("/", 1)[1]
    out = subprocess.run(
        [
            str(stack.postgres.bin / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(stack.postgres.port),
            "-U",
            "postgres",
            "-d",
            db,
            "-At",
            "-c",
            "select tablename from pg_tables where schemaname='public'",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {line for line in out.splitlines() if line}
