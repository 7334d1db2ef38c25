"""The pure core of bulk imports: record boundaries over chunked bytes, the CSV header, rows to
DebtorCreate or per-field errors (bad rows, BOM, quoted CSV, blank lines, CRLF)."""

from __future__ import annotations

import json

import pytest

from services.client_api.imports_rows import (
    BOM,
    Batch,
    ImportFileError,
    RecordSplitter,
    TooManyRows,
    parse_batch,
    parse_csv_row,
    parse_header,
    parse_ndjson_row,
    plan_batch,
    records,
)

HEADER = "external_id,name,phone,timezone,stage,amount_owed_minor,currency,due_date"
COLUMNS = HEADER.split(",")


def good(i: int) -> str:
    return f"crm-{i},Jane Doe {i},+14155550123,America/Los_Angeles,early,45000,USD,2026-11-01"


def split(data: bytes, chunk: int, **kw: object) -> RecordSplitter:
    s = RecordSplitter("csv", has_header=True, strip_bom=True, **kw)  # type: ignore[arg-type]
    for i in range(0, len(data), chunk):
        s.feed(data[i : i + chunk])
    s.finish()
    return s


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 10_000])
def test_batches_cover_the_rows_whatever_the_chunking(chunk: int) -> None:
    lines = [HEADER, *(good(i) for i in range(1, 8))]
    data = BOM + ("\r\n".join(lines) + "\r\n").encode()
    s = split(data, chunk, batch_rows=3)
    assert s.header == HEADER.encode() + b"\r"
    assert s.rows == 7
    assert [(b.first_row, b.row_count) for b in s.batches] == [(1, 3), (4, 3), (7, 1)]
    # Contiguous ranges from the end of the header to the end of the file.
    assert s.batches[0].byte_start == len(BOM) + len(HEADER) + 2
    assert all(a.byte_end == b.byte_start for a, b in zip(s.batches, s.batches[1:], strict=False))
    assert s.batches[-1].byte_end == len(data)
    rows = [
        r
        for b in s.batches
        for r in parse_batch(data[b.byte_start : b.byte_end], "csv", b.first_row, COLUMNS)
    ]
    assert [r.row for r in rows] == list(range(1, 8))
    assert all(r.debtor is not None for r in rows), [r.errors for r in rows]
    assert rows[6].debtor is not None and rows[6].debtor.external_id == "crm-7"


def test_blank_lines_are_not_rows_and_quoted_newlines_do_not_end_a_row() -> None:
    data = (
        "\n\n"
        + HEADER
        + "\n\n"
        + 'crm-1,"Doe, Jane ""JJ""",+14155550123,,early,100,usd,2026-11-01\n'
        + "   \n"
        + 'crm-2,"Line one\nline two",+14155550123,,late,200,USD,2026-11-02'
    ).encode()
    s = split(data, 5)
    assert s.header == HEADER.encode()
    assert s.rows == 2
    (batch,) = s.batches
    one, two = parse_batch(data[batch.byte_start : batch.byte_end], "csv", 1, COLUMNS)
    assert one.debtor is not None and one.debtor.name == 'Doe, Jane "JJ"'
    assert one.debtor.amount_owed.currency == "USD"  # normalised
    assert one.debtor.timezone is None  # empty cell = absent
    assert two.row == 2 and two.debtor is not None and two.debtor.name == "Line one\nline two"


def fields(parsed: object) -> dict[str | None, str]:
    return {e.field: e.reason for e in parsed.errors}  # type: ignore[attr-defined]


def test_bad_csv_rows_name_their_fields() -> None:
    row = "crm-9,,+1415,Mars/Olympus,middle,4.50,XTS,2026-13-01"
    parsed = parse_csv_row(row.encode(), 12, COLUMNS)
    assert parsed.debtor is None and {e.row for e in parsed.errors} == {12}
    assert set(fields(parsed)) == {"name", "phone", "stage", "amount_owed_minor", "due_date"}
    assert "minor units" in fields(parsed)["amount_owed_minor"]
    # A value the model accepts but the API's own checks refuse (zone, currency, number).
    parsed = parse_csv_row(
        b"crm-9,Jo,+10000000000,Mars/Olympus,early,450,XTS,2026-11-01", 3, COLUMNS
    )
    assert set(fields(parsed)) == {"phone", "timezone", "currency"}


def test_unreadable_csv_rows() -> None:
    assert fields(parse_csv_row(b"a,b", 1, COLUMNS)) == {None: "has 2 fields; the header has 8"}
    assert fields(parse_csv_row(b"crm-1,\xff\xfe", 1, COLUMNS)) == {None: "is not valid UTF-8"}
    missing_id = parse_csv_row(("," + good(1).split(",", 1)[1]).encode(), 1, COLUMNS)
    assert set(fields(missing_id)) == {"external_id"}


def test_phone_and_metadata_columns_are_normalised() -> None:
    columns = [*COLUMNS, "metadata", "metadata.portfolio"]
    record = good(1).replace("+14155550123", "+1 (415) 555-0123") + ',"{""a"": ""b""}",spring'
    parsed = parse_csv_row(record.encode(), 1, columns)
    assert parsed.debtor is not None, parsed.errors
    assert parsed.debtor.phone == "+14155550123"
    assert parsed.debtor.metadata == {"a": "b", "portfolio": "spring"}


def test_header_checks() -> None:
    assert parse_header(HEADER.encode() + b"\r") == COLUMNS
    with pytest.raises(ImportFileError) as exc:
        parse_header(b"external_id,name,name,colour")
    text = str(exc.value)
    assert "'name' appears twice" in text and "unknown column 'colour'" in text
    assert "missing required columns: phone, stage, amount_owed_minor, currency, due_date" in text


def test_file_level_errors() -> None:
    with pytest.raises(ImportFileError, match="empty"):
        split(b"\n \n", 4)
    with pytest.raises(ImportFileError, match="row 2 has a quoted field that is never closed"):
        split(f'{HEADER}\n{good(1)}\ncrm-2,"Jane\n'.encode(), 8)
    with pytest.raises(ImportFileError, match="row 1 is longer than 100 bytes"):
        split(f"{HEADER}\n{'x' * 200}\n".encode(), 50, max_record_bytes=100)
    with pytest.raises(TooManyRows):
        split(f"{HEADER}\n{good(1)}\n{good(2)}\n{good(3)}".encode(), 10, max_rows=2)
    # Exactly the maximum is fine, and a header alone is an import of no rows.
    assert split(f"{HEADER}\n{good(1)}\n{good(2)}\n".encode(), 10, max_rows=2).rows == 2
    empty = split(f"{HEADER}\n\n".encode(), 10)
    assert (empty.rows, empty.batches) == (0, [])


def test_ndjson_lines() -> None:
    body = {
        "external_id": "crm-1",
        "name": "Jane",
        "phone": "+14155550123",
        "stage": "early",
        "amount_owed": {"amount_minor": 4500.0, "currency": "USD"},
        "due_date": "2026-11-01",
    }
    lines = [json.dumps(body), "", "[1, 2]", "{not json", json.dumps({**body, "colour": "red"})]
    data = BOM + "\n".join(lines).encode()
    s = RecordSplitter("ndjson", strip_bom=True, batch_rows=2)
    for i in range(0, len(data), 3):
        s.feed(data[i : i + 3])
    s.finish()
    assert s.rows == 4 and [b.row_count for b in s.batches] == [2, 2]
    assert s.batches[0] == Batch(0, 1, 2, len(BOM), s.batches[1].byte_start)
    rows = [
        r
        for b in s.batches
        for r in parse_batch(data[b.byte_start : b.byte_end], "ndjson", b.first_row, None)
    ]
    assert rows[0].debtor is not None and rows[0].debtor.amount_owed.amount_minor == 4500
    assert fields(rows[1]) == {None: "must be a JSON object"}
    assert fields(rows[2]) == {None: "is not valid JSON"}
    assert set(fields(rows[3])) == {"colour"}  # strict like the REST body
    nested = parse_ndjson_row(
        json.dumps({**body, "amount_owed": {"amount_minor": "1"}}).encode(), 9
    )
    assert set(fields(nested)) == {"amount_owed.amount_minor", "amount_owed.currency"}
    assert fields(parse_ndjson_row(b'{"a": NaN}', 1))[None] == "is not valid JSON"


def test_records_and_plan_keep_the_first_row_of_an_external_id() -> None:
    data = f"{good(1)}\n{good(2)}\n\n{good(1)}\nbad\n".encode()
    assert len(records(data, "csv")) == 4
    plan = plan_batch(parse_batch(data, "csv", 1, COLUMNS))
    assert [p.row for p in plan.unique] == [1, 2] and plan.repeated == 1


def test_text_postgres_cannot_store_is_refused() -> None:
    nul = parse_csv_row(good(1).replace("Jane Doe 1", "Jane\x00Doe").encode(), 1, COLUMNS)
    assert fields(nul) == {"name": "must not contain NUL characters"}
    columns = [*COLUMNS, "metadata"]
    escaped = parse_csv_row((good(1) + ',"{""a"": ""\\u0000""}"').encode(), 1, columns)
    assert fields(escaped) == {"metadata": "must not contain NUL characters"}
    line = json.dumps(
        {
            "external_id": "crm-1",
            "name": "Jane \ud800",
            "phone": "+14155550123",
            "stage": "early",
            "amount_owed": {"amount_minor": 1, "currency": "USD"},
            "due_date": "2026-11-01",
        }
    )
    lone = parse_ndjson_row(line.encode(), 1)  # a lone surrogate: refused, never stored
    assert lone.debtor is None and lone.errors
