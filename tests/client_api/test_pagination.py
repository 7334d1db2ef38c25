"""The one list-page helper (services/client_api/pagination.py) with a key other than
newest-first `(created_at, id)`: two integer columns with ties on the first, ascending and
descending, filters as where-clauses; and the integer cursor fields are total."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.client_api.pagination import (
    Keyset,
    decode_position,
    encode_position,
    integer,
    page,
)
from services.client_api.problems import INVALID_CURSOR, ProblemError
from services.common.models.imports import DebtorImport
from services.common.models.imports import ImportRowError as ErrorRow
from tests.client_api.test_hostile_input import as_cursor, json_values

FIELDS = (integer("r", 0, 2**31), integer("i", 0, 2**63))
ASC = Keyset((ErrorRow.row, ErrorRow.id), FIELDS)
DESC = Keyset((ErrorRow.row, ErrorRow.id), FIELDS, descending=True)
DETAIL = "`cursor` is not a cursor this list issued; start again without it."


def _doc(token: str) -> dict[str, Any]:
    return dict(json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))))


async def _errors(sessions: async_sessionmaker[AsyncSession], rows: list[int]) -> uuid.UUID:
    job_id = uuid.uuid4()
    digest = hashlib.sha256(job_id.bytes).hexdigest()
    async with sessions() as session, session.begin():
        session.add(
            DebtorImport(
                id=job_id,
                status="completed",
                format="csv",
                size_bytes=1,
                content_sha256=digest,
                fingerprint=digest,
                blob_key=f"test/{job_id}",
                rows_total=len(rows),
                batches_total=1,
            )
        )
        await session.flush()
        session.add_all(ErrorRow(import_id=job_id, row=r, reason="bad") for r in rows)
    return job_id


async def _walk(
    sessions: async_sessionmaker[AsyncSession], key: Keyset, job_id: uuid.UUID, limit: int
) -> list[list[tuple[int, int]]]:
    pages: list[list[tuple[int, int]]] = []
    cursor: str | None = None
    while True:
        async with sessions() as session:
            rows, cursor = await page(
                session,
                select(ErrorRow),
                key,
                kind="test-errors",
                filters={"import_id": job_id},
                limit=limit,
                cursor=cursor,
                where=[ErrorRow.import_id == job_id, None],
            )
        pages.append([(r.row, r.id) for r in rows])
        if cursor is None:
            return pages


@pytest.mark.parametrize("key", [ASC, DESC], ids=["ascending", "descending"])
async def test_a_two_column_key_pages_every_row_once_in_order(
    sessions: async_sessionmaker[AsyncSession], key: Keyset
) -> None:
    job_id = await _errors(sessions, [3, 1, 1, 2, 1, 3, 2])
    await _errors(sessions, [1, 2])  # another import's rows: the where-clause leaves them out
    pages = await _walk(sessions, key, job_id, limit=2)
    seen = [k for p in pages for k in p]
    assert seen == sorted(seen, reverse=key.descending) and len(seen) == len(set(seen)) == 7
    assert [len(p) for p in pages] == [2, 2, 2, 1]  # next_cursor is null on the last page
    # A page that ends exactly on the last row has no next cursor either.
    assert [len(p) for p in await _walk(sessions, key, job_id, limit=7)] == [7]


def test_integer_fields_round_trip_and_refuse_what_is_out_of_range() -> None:
    job = {"import_id": uuid.uuid4()}
    token = encode_position("test-errors", job, FIELDS, (2**31 - 1, 2**63 - 1))
    assert decode_position(token, "test-errors", job, FIELDS) == (2**31 - 1, 2**63 - 1)
    doc = _doc(token)
    for r in (-1, 2**31, True, 1.0, "1", None):
        with pytest.raises(ProblemError) as exc:
            decode_position(as_cursor({**doc, "r": r, "i": 1}), "test-errors", job, FIELDS, DETAIL)
        assert (exc.value.status, exc.value.type, exc.value.detail) == (400, INVALID_CURSOR, DETAIL)
    with pytest.raises(ProblemError):  # another import's cursor
        decode_position(token, "test-errors", {"import_id": uuid.uuid4()}, FIELDS)


@settings(max_examples=1000, deadline=None)
@given(st.dictionaries(st.sampled_from(["k", "f", "r", "i"]), json_values, max_size=4))
def test_any_document_as_an_integer_key_cursor_decodes_or_is_the_400(doc: dict[str, Any]) -> None:
    real = _doc(encode_position("test-errors", {}, FIELDS, (1, 1)))
    try:
        r, i = decode_position(as_cursor({**real, **doc}), "test-errors", {}, FIELDS)
    except ProblemError as exc:
        assert exc.status == 400 and exc.type == INVALID_CURSOR
        return
    assert type(r) is int and type(i) is int and 0 <= r < 2**31 and 0 <= i < 2**63
