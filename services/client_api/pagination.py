"""Keyset pagination with an opaque cursor: the one helper every list endpoint pages with.

A list is ordered by a key of one or more columns (`Keyset`): newest first by `(created_at, id)`
for most lists (`newest_first`), oldest first by `(at, sequence)` for a call's events, by
`(row, id)` for an import's row errors. A cursor is URL-safe base64 of a small JSON document:
which list it belongs to, a hash of the filters it was issued under (a call's or an import's id
is such a filter), and the key of the last row returned. A cursor that does not decode, or was
issued by another list or under other filters, is a 400 (`urn:problem:invalid-cursor`):
silently restarting would make a client walk rows twice.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, TypeVarTuple

from sqlalchemy import ColumnElement, Select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from services.client_api.problems import INVALID_CURSOR, ProblemError

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

INVALID_DETAIL = (
    "`cursor` is not a cursor this list issued with these filters; start again without it."
)


class _Invalid(Exception):
    """Any reason a cursor is not one we issued; never leaves this module."""


# --- the fields of a key: how each is written to and checked back from a cursor ------------


@dataclass(frozen=True)
class Field:
    """One key column's place in the cursor document: `read` turns any JSON value into the
    column's value or raises `_Invalid`."""

    name: str
    read: Callable[[object], Any]
    write: Callable[[Any], object]


def _read_timestamp(value: object) -> datetime:
    if not isinstance(value, str):
        raise _Invalid("not a string")
    try:
        at = datetime.fromisoformat(value)
    except ValueError as exc:
        raise _Invalid("not a timestamp") from exc
    if at.tzinfo is None or at.utcoffset() is None:
        raise _Invalid("naive timestamp")
    try:
        # The database compares in UTC; a shift past year 1 or 9999 must fail here, not there.
        return at.astimezone(UTC)
    except OverflowError as exc:
        raise _Invalid("timestamp out of range") from exc


def _read_uuid(value: object) -> uuid.UUID:
    if not isinstance(value, str):
        raise _Invalid("not a string")
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise _Invalid("not a UUID") from exc


def timestamp(name: str) -> Field:
    """An aware timestamp, read back in UTC."""
    return Field(name, _read_timestamp, lambda at: at.astimezone(UTC).isoformat())


def uuid_field(name: str) -> Field:
    return Field(name, _read_uuid, str)


def integer(name: str, low: int, high: int) -> Field:
    """An integer with `low <= value < high` (the column's range: the database never sees
    another)."""

    def read(value: object) -> int:
        if type(value) is not int or not low <= value < high:
            raise _Invalid("not an integer in range")
        return value

    return Field(name, read, int)


CREATED_AT_ID = (timestamp("t"), uuid_field("i"))


@dataclass(frozen=True)
class Keyset:
    """The order of a list: its key columns, their cursor fields, the direction, and how to
    read a returned row's key (by default the row's attributes named like the columns)."""

    columns: tuple[Any, ...]
    fields: tuple[Field, ...]
    descending: bool = False
    row_key: Callable[[Any], tuple[Any, ...]] | None = None

    def key_of(self, row: Any) -> tuple[Any, ...]:
        if self.row_key is not None:
            return self.row_key(row)
        return tuple(getattr(row, column.key) for column in self.columns)


def newest_first(
    model: Any, id_column: Any = None, row_key: Callable[[Any], tuple[Any, ...]] | None = None
) -> Keyset:
    """Newest first by `(created_at, id)` (or another UUID column as the tie-break)."""
    id_column = model.id if id_column is None else id_column
    return Keyset((model.created_at, id_column), CREATED_AT_ID, True, row_key)


# --- cursors -----------------------------------------------------------------------------


def _scope(filters: Mapping[str, Any]) -> str:
    canonical = json.dumps({k: str(v) for k, v in filters.items() if v is not None}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def encode_position(
    kind: str, filters: Mapping[str, Any], fields: Sequence[Field], key: Sequence[Any]
) -> str:
    doc: dict[str, object] = {"k": kind, "f": _scope(filters)}
    doc.update((f.name, f.write(v)) for f, v in zip(fields, key, strict=True))
    raw = json.dumps(doc, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def encode_cursor(
    kind: str, filters: Mapping[str, Any], created_at: datetime, id_: uuid.UUID
) -> str:
    return encode_position(kind, filters, CREATED_AT_ID, (created_at, id_))


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


def decode_position(
    token: str,
    kind: str,
    filters: Mapping[str, Any],
    fields: Sequence[Field],
    detail: str = INVALID_DETAIL,
) -> tuple[Any, ...]:
    """The key a cursor points at, for any string a client sends: every other outcome is the
    400 problem (with `detail`), never another exception."""
    try:
        doc = _document(token)
        if doc.get("k") != kind or doc.get("f") != _scope(filters):
            raise _Invalid("cursor of another list or other filters")
        return tuple(f.read(doc.get(f.name)) for f in fields)
    except _Invalid as exc:
        raise ProblemError(400, INVALID_CURSOR, detail) from exc


def decode_cursor(token: str, kind: str, filters: Mapping[str, Any]) -> tuple[datetime, uuid.UUID]:
    """The `(created_at, id)` a newest-first cursor points at (created_at in UTC)."""
    created_at, id_ = decode_position(token, kind, filters, CREATED_AT_ID)
    return created_at, id_


# --- pages -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Page:
    key: Keyset
    kind: str
    filters: Mapping[str, Any]
    limit: int
    detail: str

    def statement(
        self, stmt: Any, cursor: str | None, where: Iterable[ColumnElement[bool] | None]
    ) -> Any:
        for clause in where:
            if clause is not None:
                stmt = stmt.where(clause)
        columns = self.key.columns
        if cursor is not None:
            last = decode_position(cursor, self.kind, self.filters, self.key.fields, self.detail)
            if self.key.descending:
                stmt = stmt.where(tuple_(*columns) < tuple_(*last))
            else:
                stmt = stmt.where(tuple_(*columns) > tuple_(*last))
        order = [c.desc() for c in columns] if self.key.descending else list(columns)
        return stmt.order_by(*order).limit(self.limit + 1)

    def cut(self, rows: list[T]) -> tuple[list[T], str | None]:
        if len(rows) <= self.limit:
            return rows, None
        rows = rows[: self.limit]
        last = self.key.key_of(rows[-1])
        return rows, encode_position(self.kind, self.filters, self.key.fields, last)


async def page(
    session: AsyncSession,
    stmt: Select[T],
    key: Keyset,
    *,
    kind: str,
    filters: Mapping[str, Any],
    limit: int,
    cursor: str | None,
    where: Iterable[ColumnElement[bool] | None] = (),
    detail: str = INVALID_DETAIL,
) -> tuple[Sequence[T], str | None]:
    """One page of `stmt` (one entity a row) in `key`'s order, with `where` (None clauses
    skipped) applied, and the next cursor (None on the last page). `filters` are the list's
    query parameters: a cursor is valid only under the same ones."""
    p = _Page(key, kind, filters, limit, detail)
    rows = list((await session.scalars(p.statement(stmt, cursor, where))).all())
    return p.cut(rows)


async def page_tuples(
    session: AsyncSession,
    stmt: Select[*Ts],
    key: Keyset,
    *,
    kind: str,
    filters: Mapping[str, Any],
    limit: int,
    cursor: str | None,
    where: Iterable[ColumnElement[bool] | None] = (),
    detail: str = INVALID_DETAIL,
) -> tuple[Sequence[tuple[*Ts]], str | None]:
    """`page` for a statement of several entities or columns a row (rows as tuples)."""
    p = _Page(key, kind, filters, limit, detail)
    rows = list((await session.execute(p.statement(stmt, cursor, where))).tuples().all())
    return p.cut(rows)
