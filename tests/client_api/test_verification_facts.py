"""Verification facts on the debtor (date of birth, ZIP): accepted on create, stored, never
returned; the view lists which facts are on file. Against the API process and real PostgreSQL."""

from __future__ import annotations

import json
import re
import uuid
from datetime import date, timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common import models
from tests.client_api.conftest import create_debtor, debtor_body

_RANDOM_DIGITS = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"  # ids
    r"|\d{4}-\d{2}-\d{2}T[0-9:.]+(?:Z|[+-]\d{2}:\d{2})?"  # timestamps
)


async def test_facts_are_stored_and_never_returned(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    created = await create_debtor(client, date_of_birth="1985-03-04", postal_code="62704")
    assert created["verification_facts"] == ["date_of_birth", "postal_code", "account_last4"]
    fetched = (await client.get(f"/v1/debtors/{created['id']}")).json()
    listed = (await client.get("/v1/debtors", params={"limit": 100})).json()["data"]
    for view in (created, fetched, *[d for d in listed if d["id"] == created["id"]]):
        # Ids and timestamps are random digits: a UUID may well contain "1985".
        text = _RANDOM_DIGITS.sub("", json.dumps(view))
        assert "date_of_birth" not in view and "postal_code" not in view
        assert "1985" not in text and "62704" not in text
    async with sessions() as s:
        row = await s.scalar(select(models.Debtor).where(models.Debtor.id == created["id"]))
    assert row is not None and (row.date_of_birth, row.postal_code) == (date(1985, 3, 4), "62704")


async def test_without_facts_only_the_name_can_be_confirmed(client: httpx.AsyncClient) -> None:
    # "ACC-1" has fewer than 4 digits: no last 4 to ask for.
    created = await create_debtor(client, account_reference="ACC-1")
    assert created["verification_facts"] == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("postal_code", "6270"),
        ("postal_code", "62704-1234"),
        ("postal_code", "ABCDE"),
        ("date_of_birth", (date.today() + timedelta(days=1)).isoformat()),
        ("date_of_birth", "1899-12-31"),
        ("date_of_birth", "1985-02-30"),
    ],
)
async def test_bad_facts_are_422(client: httpx.AsyncClient, field: str, value: str) -> None:
    body = debtor_body(**{field: value}, external_id=f"crm-{uuid.uuid4().hex[:12]}")
    resp = await client.post("/v1/debtors", json=body)
    assert resp.status_code == 422, resp.text
    assert field in resp.text
