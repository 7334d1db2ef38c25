"""Pure core of bulk debtor imports: where the records of a file are, and what each row means.

No I/O. `RecordSplitter` is fed the upload's bytes chunk by chunk (it never holds the file): it
finds where each record ends (a newline outside CSV quotes), skips blank lines, keeps the CSV
header, counts rows and cuts the file into batches of byte ranges. The worker feeds it one
batch's bytes to get that batch's records back. `parse_csv_row` / `parse_ndjson_row` turn one
record into a `DebtorCreate` (the generated model, validated strictly like the REST body) or the
reasons it is refused, per field.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from generated.client_api import DebtorCreate
from services.client_api.strict import _whole_numbers_as_int as whole_numbers_as_int
from services.client_api.validation import debtor_errors, debtor_value_errors

Format = Literal["csv", "ndjson"]

BOM = b"\xef\xbb\xbf"
# One record (a CSV row with its quoted newlines, or one JSON line) may not be longer: a missing
# closing quote would otherwise make the rest of the file one "row".
MAX_RECORD_BYTES = 64 * 1024
MAX_ERRORS_PER_ROW = 10

# CSV columns: the DebtorCreate fields, flat. `amount_owed` is two columns; `metadata` is a JSON
# object, and/or one `metadata.<key>` column per key.
COLUMNS = (
    "external_id",
    "name",
    "phone",
    "timezone",
    "stage",
    "amount_owed_minor",
    "currency",
    "due_date",
    "account_reference",
    "date_of_birth",
    "postal_code",
    "metadata",
)
REQUIRED_COLUMNS = (
    "external_id",
    "name",
    "phone",
    "stage",
    "amount_owed_minor",
    "currency",
    "due_date",
)
METADATA_PREFIX = "metadata."
EXTERNAL_ID_REQUIRED = "is required in an import: it is the row's external reference"


class ImportFileError(ValueError):
    """The file as a whole cannot be imported (422 at upload): `(field, message)` pairs."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {m}" for f, m in errors))
        self.errors = errors


class TooManyRows(ValueError):
    """More data rows than an import may have (413 at upload)."""


@dataclass(frozen=True)
class Batch:
    index: int
    first_row: int
    row_count: int
    byte_start: int
    byte_end: int


@dataclass(frozen=True)
class RowError:
    row: int
    field: str | None
    reason: str


@dataclass(frozen=True)
class ParsedRow:
    row: int
    debtor: DebtorCreate | None
    errors: tuple[RowError, ...] = ()


_CSV_SPECIAL = re.compile(rb'["\n]')


@dataclass
class RecordSplitter:
    """Record boundaries of a CSV or JSON-lines byte stream, fed in chunks of any size.

    `feed` returns the `(start, end)` offsets of the non-blank data records it completed (end
    excludes the newline). With `has_header` (a whole CSV file) the first non-blank record is
    the header (`header`), not a row. A UTF-8 byte order mark at the very start is skipped with
    `strip_bom`. Rows are numbered from 1 in the order they appear; `batches` cover the file
    after the header contiguously, `batch_rows` rows each (the last one fewer).
    """

    format: Format
    has_header: bool = False
    strip_bom: bool = False
    batch_rows: int = 1000
    max_rows: int | None = None
    max_record_bytes: int = MAX_RECORD_BYTES
    header: bytes | None = None
    rows: int = 0
    batches: list[Batch] = field(default_factory=list)
    _size: int = 0  # bytes fed so far (after any held prefix)
    _prefix: bytes = b""  # the first bytes, held until a BOM can be recognised
    _started: bool = False
    _rec_start: int = 0
    _has_content: bool = False
    _in_quotes: bool = False
    _head: bytearray = field(default_factory=bytearray)  # bytes of the header record so far
    _head_origin: int = 0  # file offset of _head[0]
    _batch_start: int = 0
    _batch_count: int = 0

    def feed(self, chunk: bytes) -> list[tuple[int, int]]:
        if not self._started:
            self._prefix += chunk
            if len(self._prefix) < len(BOM) and BOM.startswith(self._prefix):
                return []  # could still be a BOM
            chunk = self._start()
        return self._feed(chunk)

    def _start(self) -> bytes:
        chunk, self._prefix = self._prefix, b""
        self._started = True
        if self.strip_bom and chunk.startswith(BOM):
            self._size = self._rec_start = self._batch_start = len(BOM)
            chunk = chunk[len(BOM) :]
        return chunk

    def _feed(self, chunk: bytes) -> list[tuple[int, int]]:
        spans: list[tuple[int, int]] = []
        base = self._size
        self._size += len(chunk)
        if self.has_header and self.header is None:
            if not self._head:
                self._head_origin = max(base, self._rec_start)
            self._head += chunk[self._head_origin - base :] if self._head_origin > base else chunk
        if self.format == "csv":
            self._scan_csv(chunk, base, spans)
        else:
            self._scan_lines(chunk, base, spans)
        if self._size - self._rec_start > self.max_record_bytes:
            self._too_long()
        return spans

    def finish(self) -> list[tuple[int, int]]:
        """The last record (no final newline needed) and the last batch."""
        spans = [] if self._started else self._feed(self._start())
        if self._in_quotes:
            raise ImportFileError(
                [("body", f"row {self.rows + 1} has a quoted field that is never closed")]
            )
        if self._size > self._rec_start:
            self._end_record(self._size, self._size, spans)
        if self.has_header and self.header is None:
            raise ImportFileError([("body", "the file is empty: a CSV file needs a header row")])
        if self._batch_count:
            self._close_batch(self._size)
        return spans

    @property
    def size(self) -> int:
        return self._size + len(self._prefix)

    def _too_long(self) -> None:
        what = "the header" if self.has_header and self.header is None else f"row {self.rows + 1}"
        raise ImportFileError([("body", f"{what} is longer than {self.max_record_bytes} bytes")])

    def _scan_lines(self, chunk: bytes, base: int, spans: list[tuple[int, int]]) -> None:
        pos = 0
        while True:
            nl = chunk.find(b"\n", pos)
            segment = chunk[pos:] if nl < 0 else chunk[pos:nl]
            if not self._has_content and segment and not segment.isspace():
                self._has_content = True
            if nl < 0:
                return
            self._end_record(base + nl, base + nl + 1, spans)
            pos = nl + 1

    def _scan_csv(self, chunk: bytes, base: int, spans: list[tuple[int, int]]) -> None:
        pos = 0
        for match in _CSV_SPECIAL.finditer(chunk):
            at = match.start()
            if chunk[at] == 0x22:  # a quote: content, and into or out of a quoted field
                self._in_quotes = not self._in_quotes
                self._has_content = True
                continue
            if self._in_quotes:
                continue  # a newline inside a quoted field
            segment = chunk[pos:at]
            if not self._has_content and segment and not segment.isspace():
                self._has_content = True
            self._end_record(base + at, base + at + 1, spans)
            pos = at + 1
        segment = chunk[pos:]
        if not self._has_content and segment and not segment.isspace():
            self._has_content = True

    def _end_record(self, end: int, next_start: int, spans: list[tuple[int, int]]) -> None:
        if end - self._rec_start > self.max_record_bytes:
            self._too_long()
        if self._has_content:
            if self.has_header and self.header is None:
                origin = self._head_origin
                self.header = bytes(self._head[self._rec_start - origin : end - origin])
                self._head = bytearray()
                self._batch_start = next_start
            else:
                self.rows += 1
                if self.max_rows is not None and self.rows > self.max_rows:
                    raise TooManyRows(f"more than {self.max_rows} rows")
                spans.append((self._rec_start, end))
                self._batch_count += 1
                if self._batch_count == self.batch_rows:
                    self._close_batch(next_start)
        elif self.has_header and self.header is None:
            # A blank line before the header: forget its bytes.
            del self._head[: next_start - self._head_origin]
            self._head_origin = next_start
            self._batch_start = next_start
        self._rec_start = next_start
        self._has_content = False

    def _close_batch(self, end: int) -> None:
        self.batches.append(
            Batch(
                index=len(self.batches),
                first_row=self.rows - self._batch_count + 1,
                row_count=self._batch_count,
                byte_start=self._batch_start,
                byte_end=end,
            )
        )
        self._batch_start = end
        self._batch_count = 0


def records(data: bytes, fmt: Format) -> list[bytes]:
    """The non-blank records of one batch's bytes (no header, no BOM), in order."""
    splitter = RecordSplitter(fmt, max_record_bytes=len(data) + 1)
    spans = splitter.feed(data) + splitter.finish()
    return [data[s:e] for s, e in spans]


# --- CSV header and rows ---


def _decode(record: bytes) -> str:
    text = record.decode("utf-8")  # UnicodeDecodeError (a ValueError) for the caller
    return text[:-1] if text.endswith("\r") else text


def _csv_fields(text: str) -> list[str]:
    parsed = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    if len(parsed) != 1:
        raise csv.Error("one row expected")
    return parsed[0]


def parse_header(header: bytes) -> list[str]:
    """The CSV header's column names; the file is refused if they are not usable."""
    try:
        names = [n.strip() for n in _csv_fields(_decode(header))]
    except (ValueError, csv.Error) as exc:
        raise ImportFileError([("body", f"the header row is not valid UTF-8 CSV: {exc}")]) from exc
    errors: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name in names:
        if name in seen:
            errors.append(("body", f"column {name!r} appears twice"))
        seen.add(name)
        known = name in COLUMNS or (
            name.startswith(METADATA_PREFIX) and len(name) > len(METADATA_PREFIX)
        )
        if not known:
            errors.append(
                (
                    "body",
                    f"unknown column {name!r}; known columns: {', '.join(COLUMNS)}, metadata.<key>",
                )
            )
    missing = [c for c in REQUIRED_COLUMNS if c not in seen]
    if missing:
        errors.append(("body", f"missing required columns: {', '.join(missing)}"))
    if errors:
        raise ImportFileError(errors)
    return names


def normalise_phone(value: str) -> str:
    """`+1 (415) 555-0123` → `+14155550123`: spaces, dots, dashes and parentheses go."""
    return re.sub(r"[\s().\-]", "", value)


def _csv_document(
    row: int, columns: list[str], values: list[str]
) -> tuple[dict[str, Any], list[RowError]]:
    doc: dict[str, Any] = {}
    errors: list[RowError] = []
    metadata: dict[str, Any] = {}
    amount: dict[str, Any] = {}
    cells = {c: v.strip() for c, v in zip(columns, values, strict=True)}
    for column, value in cells.items():
        if value == "":
            continue  # an empty cell is an absent value
        if column.startswith(METADATA_PREFIX):
            metadata[column[len(METADATA_PREFIX) :]] = value
        elif column == "metadata":
            try:
                parsed = json.loads(value, parse_constant=_no_constant)
            except (ValueError, RecursionError):
                parsed = None
            if not isinstance(parsed, dict):
                errors.append(RowError(row, "metadata", "must be a JSON object of strings"))
            else:
                metadata = {**parsed, **metadata}
        elif column == "amount_owed_minor":
            if re.fullmatch(r"[0-9]{1,18}", value):
                amount["amount_minor"] = int(value)
            else:
                errors.append(
                    RowError(
                        row,
                        column,
                        "must be a whole number of minor units, e.g. 45000 for 450.00",
                    )
                )
        elif column == "currency":
            amount["currency"] = value.upper()
        elif column == "phone":
            doc["phone"] = normalise_phone(value)
        elif column == "stage":
            doc["stage"] = value.lower()
        else:
            doc[column] = value
    if "amount_owed_minor" in cells and "currency" in cells:
        if cells["amount_owed_minor"] == "":
            errors.append(RowError(row, "amount_owed_minor", "is required"))
        if cells["currency"] == "":
            errors.append(RowError(row, "currency", "is required"))
    if len(amount) == 2:
        doc["amount_owed"] = amount
    if metadata:
        doc["metadata"] = metadata
    return doc, errors


_CSV_FIELD = {
    ("amount_owed", "amount_minor"): "amount_owed_minor",
    ("amount_owed", "currency"): "currency",
}


_AMOUNT_COLUMNS = {"amount_owed_minor", "currency"}


def _csv_field(loc: tuple[Any, ...]) -> str | None:
    if not loc:
        return None
    if loc[:2] in _CSV_FIELD:
        return _CSV_FIELD[loc[:2]]
    return str(loc[0])


def _json_field(loc: tuple[Any, ...]) -> str | None:
    return ".".join(str(p) for p in loc) if loc else None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _validated(
    row: int,
    doc: dict[str, Any],
    name_of: Any,
    earlier: list[RowError],
    text_suspect: bool,
) -> ParsedRow:
    errors = list(earlier)
    skip = {e.field for e in earlier}
    debtor: DebtorCreate | None = None
    try:
        debtor = DebtorCreate.model_validate_json(
            json.dumps(whole_numbers_as_int(doc), allow_nan=False), strict=True
        )
    except ValidationError as exc:
        for err in exc.errors(include_url=False, include_input=False):
            loc = tuple(err["loc"])
            name = name_of(loc)
            if name in skip or (loc == ("amount_owed",) and skip & _AMOUNT_COLUMNS):
                continue  # already refused by the CSV reading (e.g. amount not a number)
            reason = "is required" if err["type"] == "missing" else err["msg"]
            errors.append(RowError(row, name, reason))
    if debtor is not None:
        checks = debtor_errors if text_suspect else debtor_value_errors
        for path, message in checks(debtor):
            parts = tuple(path.removeprefix("body.").split("."))
            errors.append(RowError(row, name_of(parts), message))
        if debtor.external_id is None:
            errors.append(RowError(row, "external_id", EXTERNAL_ID_REQUIRED))
    elif "external_id" not in doc and all(e.field != "external_id" for e in errors):
        errors.append(RowError(row, "external_id", EXTERNAL_ID_REQUIRED))
    if errors:
        return ParsedRow(row, None, tuple(_dedupe(errors)[:MAX_ERRORS_PER_ROW]))
    return ParsedRow(row, debtor)


def _dedupe(errors: Iterable[RowError]) -> list[RowError]:
    return list(dict.fromkeys(errors))


def _text_suspect(record: bytes) -> bool:
    """Whether the row may hold text PostgreSQL cannot store: strict UTF-8 has no lone
    surrogate, so only a raw NUL or a JSON escape (`\\u0000`, `\\ud800`, in a JSON line or a
    CSV `metadata` cell) can bring one."""
    return b"\x00" in record or b"\\u" in record


def parse_csv_row(record: bytes, row: int, columns: list[str]) -> ParsedRow:
    try:
        values = _csv_fields(_decode(record))
    except UnicodeDecodeError:
        return ParsedRow(row, None, (RowError(row, None, "is not valid UTF-8"),))
    except csv.Error as exc:
        return ParsedRow(row, None, (RowError(row, None, f"is not valid CSV: {exc}"),))
    if len(values) != len(columns):
        reason = f"has {len(values)} fields; the header has {len(columns)}"
        return ParsedRow(row, None, (RowError(row, None, reason),))
    doc, errors = _csv_document(row, columns, values)
    return _validated(row, doc, _csv_field, errors, text_suspect=_text_suspect(record))


def parse_ndjson_row(record: bytes, row: int) -> ParsedRow:
    try:
        doc = json.loads(_decode(record), parse_constant=_no_constant)
    except UnicodeDecodeError:
        return ParsedRow(row, None, (RowError(row, None, "is not valid UTF-8"),))
    except (ValueError, RecursionError):
        return ParsedRow(row, None, (RowError(row, None, "is not valid JSON"),))
    if not isinstance(doc, dict):
        return ParsedRow(row, None, (RowError(row, None, "must be a JSON object"),))
    return _validated(row, doc, _json_field, [], text_suspect=_text_suspect(record))


def parse_batch(
    data: bytes, fmt: Format, first_row: int, columns: list[str] | None
) -> list[ParsedRow]:
    """Every row of one batch's bytes, numbered from `first_row`."""
    parsed: list[ParsedRow] = []
    for offset, record in enumerate(records(data, fmt)):
        row = first_row + offset
        if fmt == "csv":
            assert columns is not None
            parsed.append(parse_csv_row(record, row, columns))
        else:
            parsed.append(parse_ndjson_row(record, row))
    return parsed


@dataclass(frozen=True)
class BatchPlan:
    """Which valid rows to insert (first row of each external_id) and which repeat one."""

    unique: list[ParsedRow]
    repeated: int


def plan_batch(rows: Iterable[ParsedRow]) -> BatchPlan:
    seen: set[str] = set()
    unique: list[ParsedRow] = []
    repeated = 0
    for parsed in rows:
        if parsed.debtor is None:
            continue
        key = parsed.debtor.external_id
        assert key is not None  # required in imports (_validated)
        if key in seen:
            repeated += 1
            continue
        seen.add(key)
        unique.append(parsed)
    return BatchPlan(unique, repeated)
