"""Alembic upgrade to head and downgrade to base on real PostgreSQL, in a scratch database."""

from __future__ import annotations

import asyncio
import subprocess
import uuid

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from generated.call_outcome import CallOutcome
from generated.call_step_reason import CallStepReason
from generated.client_api import HoldKind
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


def test_the_databases_checks_accept_every_spec_value(stack: LocalStack) -> None:
    """Autogenerate does not compare CHECK constraints: a value added to a spec enum without
    a migration is refused only when the first row carries it (a plan refusal's step, a new
    hold kind). Each check at head lists every value of its enum, and each column fits it."""
    url = _scratch_db(stack)
    command.upgrade(alembic_config(url), "head")
    wanted = {
        ("calls", "ck_calls_outcome", "outcome"): [v.value for v in CallOutcome],
        ("call_step_events", "ck_call_step_events_reason", "reason"): [
            v.value for v in CallStepReason
        ],
        ("debtor_holds", "ck_debtor_holds_kind", "kind"): [v.value for v in HoldKind],
    }

    async def read() -> dict[str, tuple[str, int | None]]:
        eng = create_async_engine(url)
        out = {}
        async with eng.connect() as conn:
            for table, name, column in wanted:
                definition = (
                    await conn.exec_driver_sql(
                        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = $1",
                        (name,),
                    )
                ).scalar_one()
                width = (
                    await conn.exec_driver_sql(
                        "SELECT character_maximum_length FROM information_schema.columns"
                        " WHERE table_name = $1 AND column_name = $2",
                        (table, column),
                    )
                ).scalar_one()
                out[name] = (definition, width)
        await eng.dispose()
        return out

    found = asyncio.run(read())
    for (_, name, _), values in wanted.items():
        definition, width = found[name]
        missing = [v for v in values if f"'{v}'" not in definition]
        assert not missing, (name, missing)
        assert width is None or max(map(len, values)) <= width, (name, width)
