"""Keyset pagination, newest first, over `(created_at, id)` with an opaque cursor.

A cursor is URL-safe base64 of a small JSON document: which list it belongs to, a hash of the
filters it was issued under, and the `(created_at, id)` of the last row returned. A cursor that
does not decode, or was issued by another list or under other filters, is a 400
(`urn:problem:invalid-cursor`): silently restarting would make a client walk rows twice.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from services.client_api.problems import INVALID_CURSOR, ProblemError

T = TypeVar("T")


def _scope(filters: dict[str, Any]) -> str:
    canonical = json.dumps({k: str(v) for k, v in filters.items() if v is not None}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def encode_cursor(kind: str, filters: dict[str, Any], created_at: datetime, id_: uuid.UUID) -> str:
    doc = {"k": kind, "f": _scope(filters), "t": created_at.isoformat(), "i": str(id_)}
    raw = json.dumps(doc, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class _Invalid(Exception):
    """Any reason a cursor is not one we issued; never leaves this module."""


def _document(token: str) -> dict[str, Any]:
    if not token.isascii():
        raise _Invalid("not base64")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        doc = json.loads(raw)
    # RecursionError: a deeply nested document; ValueError covers bad UTF-8 and huge integers.
    except (ValueError, binascii.Error, RecursionError) as exc:
        raise _Invalid("not base64 JSON") from exc
    if not isinstance(doc, dict):
        raise _Invalid("not an object")
    return doc


def _position(doc: dict[str, Any]) -> tuple[datetime, uuid.UUID]:
    t, i = doc.get("t"), doc.get("i")
    if not isinstance(t, str) or not isinstance(i, str):
        raise _Invalid("fields of the wrong type")
    try:
        created_at = datetime.fromisoformat(t)
        id_ = uuid.UUID(i)
    except ValueError as exc:
        raise _Invalid("not a timestamp and a UUID") from exc
    if created_at.tzinfo is None or created_at.utcoffset() is None:
        raise _Invalid("naive timestamp")
    try:
        # The database compares in UTC; a shift past year 1 or 9999 must fail here, not there.
        created_at = created_at.astimezone(UTC)
    except OverflowError as exc:
        raise _Invalid("timestamp out of range") from exc
    return created_at, id_


def decode_cursor(token: str, kind: str, filters: dict[str, Any]) -> tuple[datetime, uuid.UUID]:
    """The `(created_at, id)` a cursor points at (created_at in UTC), for any string a client
    sends: every other outcome is the 400 problem, never another exception."""
    try:
        doc = _document(token)
        if doc.get("k") != kind or doc.get("f") != _scope(filters):
            raise _Invalid("cursor of another list or other filters")
        return _position(doc)
    except _Invalid as exc:
        raise ProblemError(
            400,
            INVALID_CURSOR,
            "`cursor` is not a cursor this list issued with these filters; start again without it.",
        ) from exc


async def page(
    session: AsyncSession,
    stmt: Select[T],
    model: Any,
    *,
    kind: str,
    filters: dict[str, Any],
    limit: int,
    cursor: str | None,
) -> tuple[Sequence[T], str | None]:
    """One page of `stmt` (rows of `model`, which has `created_at` and `id`) and the next cursor."""
    if cursor is not None:
        created_at, last_id = decode_cursor(cursor, kind, filters)
        stmt = stmt.where(tuple_(model.created_at, model.id) < tuple_(created_at, last_id))
    stmt = stmt.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1)
    rows = list((await session.scalars(stmt)).all())
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last: Any = rows[-1]
    return rows, encode_cursor(kind, filters, last.created_at, last.id)
