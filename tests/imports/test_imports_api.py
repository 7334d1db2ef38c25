"""Bulk debtor import through the real app: upload (raw and multipart, streamed), batches over
the Pub/Sub emulator to the in-process import worker, debtors and row errors in PostgreSQL, the
file in the GCS emulator; idempotency by file and by external reference; limits and types."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from generated.import_completed_event import ImportCompletedEvent
from services.client_api.imports_store import batch_event_id, completed_event_id
from services.client_api.imports_worker import ImportBatchHandler
from services.common.blobstore import GcsBlobStore
from services.common.bus import CloudEvent, IdempotentHandler
from services.common.models import Debtor, OutboxMessage, WebhookDelivery
from services.common.models.campaigns import Campaign, CampaignItem
from services.common.models.imports import DebtorImport
from services.common.settings import Settings
from tests.imports.conftest import LIMITS, chunks, csv_row, tag, wait_done

BOM = "\ufeff"
COLUMNS = list(csv_row("x"))


def csv_text(rows: list[dict[str, str]], columns: list[str] | None = None) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns or COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


async def upload(
    client: httpx.AsyncClient,
    body: bytes,
    content_type: str = "text/csv",
    streamed: bool = True,
    **kw: Any,
) -> httpx.Response:
    return await client.post(
        "/v1/debtor-imports",
        content=chunks(body, 777) if streamed else body,
        headers={"Content-Type": content_type, **kw.pop("headers", {})},
        **kw,
    )


async def all_errors(client: httpx.AsyncClient, import_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 4}
        if cursor:
            params["cursor"] = cursor
        resp = await client.get(f"/v1/debtor-imports/{import_id}/errors", params=params)
        assert resp.status_code == 200, resp.text
        page = resp.json()
        assert len(page["data"]) <= 4
        found += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            return found


async def test_csv_import_with_bad_rows_duplicates_and_progress(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    t = tag()
    existing = {
        "name": "Already Here",
        "phone": "+14155550199",
        "stage": "late",
        "amount_owed": {"amount_minor": 100, "currency": "USD"},
        "due_date": "2026-10-01",
        "external_id": f"{t}-7",
    }
    assert (await client.post("/v1/debtors", json=existing)).status_code == 201
    rows = [csv_row(f"{t}-{i}", name=f"Debtor {i}") for i in range(1, 121)]
    rows[2] = csv_row(f"{t}-3", name='Doe, "JJ"\nSecond line', phone="+1 (415) 555-0177")
    rows[9] = csv_row(f"{t}-10", phone="12345", stage="middle")  # row 10: two bad fields
    rows[19] = csv_row(f"{t}-20", amount_owed_minor="12.50")  # row 20
    rows[29] = csv_row(f"{t}-30", currency="XTS", timezone="Mars/Olympus")  # row 30
    rows[39] = csv_row("", name="No Reference")  # row 40
    rows[59] = csv_row(f"{t}-1", name="Same reference as row 1")  # row 60: duplicate in file
    text = csv_text(rows)
    # A BOM, blank lines (not rows) and CRLF line ends.
    lines = text.split("\r\n")
    body = (BOM + "\r\n".join([*lines[:50], "", "  ", *lines[50:]]) + "\r\n").encode()

    resp = await upload(client, body)
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert resp.headers["Location"] == f"/v1/debtor-imports/{job['id']}"
    assert job["status"] in ("queued", "processing", "completed")
    assert job["format"] == "csv" and job["filename"] is None and job["size_bytes"] == len(body)
    assert job["counts"]["rows_total"] == 120

    done = await wait_done(client, job["id"])
    assert done["status"] == "completed" and done["completed_at"] is not None
    # 120 rows: 4 refused (10, 20, 30, 40), 2 duplicates (row 7 existed, row 60 repeats row 1).
    assert done["counts"] == {
        "rows_total": 120,
        "rows_processed": 120,
        "created": 116 - 2,
        "duplicates": 2,
        "failed": 4,
    }
    errors = await all_errors(client, job["id"])
    assert [e["row"] for e in errors] == [10, 10, 20, 30, 30, 40]
    assert {(e["row"], e["field"]) for e in errors} == {
        (10, "phone"),
        (10, "stage"),
        (20, "amount_owed_minor"),
        (30, "currency"),
        (30, "timezone"),
        (40, "external_id"),
    }
    # The same list as CSV, two ways.
    for resp in (
        await client.get(f"/v1/debtor-imports/{job['id']}/errors.csv"),
        await client.get(f"/v1/debtor-imports/{job['id']}/errors", headers={"Accept": "text/csv"}),
    ):
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
        table = list(csv.reader(io.StringIO(resp.text)))
        assert table[0] == ["row", "field", "reason"]
        assert [(int(r), f) for r, f, _ in table[1:]] == [(e["row"], e["field"]) for e in errors]

    async with sessions() as s:
        debtors = {
            d.external_id: d
            for d in (
                await s.scalars(select(Debtor).where(Debtor.external_id.like(f"{t}-%")))
            ).all()
        }
    assert len(debtors) == 115  # 114 created + the one that existed
    assert debtors[f"{t}-7"].name == "Already Here"  # a duplicate changes nothing
    # Rows 1 and 60 share a reference, in two batches handled concurrently: one of them wins.
    assert debtors[f"{t}-1"].name in ("Debtor 1", "Same reference as row 1")
    three = debtors[f"{t}-3"]
    assert three.name == 'Doe, "JJ"\nSecond line' and three.phone == "+14155550177"
    got = (await client.get(f"/v1/debtors/{three.id}")).json()
    assert got["external_id"] == f"{t}-3" and got["amount_owed"]["amount_minor"] == 45000

    # The same file again is the same import; nothing new is created.
    again = await upload(client, body, streamed=False)
    assert again.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == job["id"]
    # Other bytes with the same references: a new import of duplicates only.
    ndjson = "\n".join(
        json.dumps(
            {
                "external_id": f"{t}-{i}",
                "name": "Changed",
                "phone": "+14155550123",
                "stage": "early",
                "amount_owed": {"amount_minor": 1, "currency": "USD"},
                "due_date": "2026-11-01",
            }
        )
        for i in range(1, 6)
    ).encode()
    second = await upload(client, ndjson, "application/x-ndjson")
    assert second.status_code == 202 and second.json()["id"] != job["id"]
    again_done = await wait_done(client, second.json()["id"])
    assert again_done["counts"]["duplicates"] == 5 and again_done["counts"]["created"] == 0
    async with sessions() as s:
        count = await s.scalar(
            select(func.count()).select_from(Debtor).where(Debtor.external_id.like(f"{t}-%"))
        )
        assert count == 115


async def test_multipart_ndjson_import_and_the_completed_webhook(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    t = tag()
    endpoint = await client.post(
        "/v1/webhook-endpoints",
        json={"url": "http://127.0.0.1:9/hooks", "events": ["import.completed"]},
    )
    assert endpoint.status_code == 201, endpoint.text
    lines = [
        json.dumps(
            {
                "external_id": f"{t}-{i}",
                "name": f"Json {i}",
                "phone": "+14155550123",
                "stage": "pre_delinquency",
                "amount_owed": {"amount_minor": 1000 + i, "currency": "EUR"},
                "due_date": "2026-12-01",
                "metadata": {"batch": "b1"},
            }
        )
        for i in range(1, 131)
    ]
    lines[99] = '{"external_id": "broken'  # row 100
    lines[100] = json.dumps({"external_id": f"{t}-x", "name": "Extra", "colour": "red"})
    body = ("\n".join(lines) + "\n").encode()
    resp = await client.post(
        "/v1/debtor-imports",
        files={"file": ("debtors.ndjson", body, "application/x-ndjson")},
    )
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert (job["format"], job["filename"], job["size_bytes"]) == (
        "ndjson",
        "debtors.ndjson",
        len(body),
    )
    done = await wait_done(client, job["id"])
    assert done["counts"] == {
        "rows_total": 130,
        "rows_processed": 130,
        "created": 128,
        "duplicates": 0,
        "failed": 2,
    }
    errors = await all_errors(client, job["id"])
    assert {(e["row"], e["field"]) for e in errors} >= {(100, None), (101, "colour")}
    assert {e["row"] for e in errors} == {100, 101}

    # import.completed: one event per import, fanned out to the subscribed endpoint.
    ce_id = completed_event_id(uuid.UUID(job["id"]))
    delivery = None
    for _ in range(200):
        async with sessions() as s:
            delivery = await s.scalar(
                select(WebhookDelivery).where(
                    WebhookDelivery.event_id == ce_id,
                    WebhookDelivery.endpoint_id == uuid.UUID(endpoint.json()["id"]),
                )
            )
        if delivery is not None:
            break
        await asyncio.sleep(0.1)
    assert delivery is not None and delivery.event_type == "import.completed"
    event = ImportCompletedEvent.model_validate(delivery.payload)
    assert event.data.import_job.id == uuid.UUID(job["id"])
    assert event.data.import_job.counts.created == 128
    async with sessions() as s:
        events = await s.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.ce_id == ce_id)
        )
    assert events == 1


async def test_idempotency_key_and_header_only_file(client: httpx.AsyncClient) -> None:
    t = tag()
    key = f"key-{t}"
    one = csv_text([csv_row(f"{t}-1")]).encode()
    first = await upload(client, one, headers={"Idempotency-Key": key})
    assert first.status_code == 202
    replay = await upload(client, one, headers={"Idempotency-Key": key})
    assert replay.json()["id"] == first.json()["id"]
    assert replay.headers["Idempotent-Replayed"] == "true"
    other = await upload(
        client, csv_text([csv_row(f"{t}-2")]).encode(), headers={"Idempotency-Key": key}
    )
    assert other.status_code == 409 and other.json()["type"] == "urn:problem:idempotency-key-reused"
    # A header and no rows: completed at once.
    empty = await upload(client, f"{','.join(COLUMNS)},metadata.{t}\n".encode())
    assert empty.status_code == 202, empty.text
    assert empty.json()["status"] == "completed"
    assert empty.json()["counts"]["rows_total"] == 0


async def test_size_type_and_file_errors(client: httpx.AsyncClient) -> None:
    t = tag()
    resp = await upload(client, b'{"a": 1}', "application/json")
    assert resp.status_code == 415 and resp.json()["type"] == "urn:problem:unsupported-media-type"
    resp = await upload(client, b"a,b\n", "text/csv; charset=latin-1")
    assert resp.status_code == 415
    resp = await client.post(
        "/v1/debtor-imports", files={"file": ("debtors.xlsx", b"PK..", "application/vnd.ms-excel")}
    )
    assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "body.file"
    resp = await client.post("/v1/debtor-imports", files={"file": ("file", b"a,b\n", "")})
    assert resp.status_code == 422

    # Too large: streamed past the limit, and declared up front.
    big = csv_text([csv_row(f"{t}-{i}", name="x" * 200) for i in range(1200)]).encode()
    assert len(big) > LIMITS["import_max_bytes"]
    resp = await upload(client, big)
    assert resp.status_code == 413 and resp.json()["type"] == "urn:problem:payload-too-large"
    resp = await upload(client, big + b"x" * (LIMITS["import_max_bytes"]), streamed=False)
    assert resp.status_code == 413
    # Too many rows (600 allowed), though small.
    many = csv_text([csv_row(f"{t}-{i}") for i in range(601)]).encode()
    assert len(many) < LIMITS["import_max_bytes"]
    resp = await upload(client, many)
    assert resp.status_code == 413 and "600 rows" in resp.json()["detail"]
    exactly = await upload(client, csv_text([csv_row(f"{t}-{i}") for i in range(600)]).encode())
    assert exactly.status_code == 202 and exactly.json()["counts"]["rows_total"] == 600

    # A header that cannot be used, a quote never closed, an empty file, a form without `file`.
    resp = await upload(client, b"external_id,name,colour\ncrm-1,Jane,red\n")
    assert resp.status_code == 422
    messages = " ".join(e["message"] for e in resp.json()["errors"])
    assert "unknown column 'colour'" in messages and "missing required columns" in messages
    resp = await upload(client, csv_text([csv_row(f"{t}-q")]).encode() + b'crm-2,"Jane\n')
    assert resp.status_code == 422 and "never closed" in resp.json()["errors"][0]["message"]
    resp = await upload(client, b"")
    assert resp.status_code == 422
    resp = await client.post("/v1/debtor-imports", files={"other": ("a.csv", b"x", "text/csv")})
    assert resp.status_code == 422
    resp = await client.post(
        "/v1/debtor-imports",
        content=b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n\r\nab',
        headers={"Content-Type": "multipart/form-data; boundary=xyz"},
    )
    assert resp.status_code == 400
    resp = await upload(client, b"x", params={"campaign_id": str(uuid.uuid4())})
    assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "query.campaign_id"
    assert (await client.get(f"/v1/debtor-imports/{uuid.uuid4()}")).status_code == 404
    resp = await client.get(
        f"/v1/debtor-imports/{exactly.json()['id']}/errors", params={"cursor": "bm9wZQ"}
    )
    assert resp.status_code == 400 and resp.json()["type"] == "urn:problem:invalid-cursor"
    listed = await client.get("/v1/debtor-imports", params={"limit": 2})
    assert listed.status_code == 200 and len(listed.json()["data"]) == 2


async def test_campaign_assignment(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    t = tag()
    campaign_id = uuid.uuid4()
    async with sessions() as s, s.begin():
        s.add(
            Campaign(
                id=campaign_id,
                name=f"import {t}",
                status="draft",
                stage="early",
                prompt_variants={},
                max_concurrent_calls=1,
                calls_per_minute=1,
            )
        )
    # One debtor exists already: it joins the campaign too.
    pre = await client.post(
        "/v1/debtors",
        json={
            "name": "Before",
            "phone": "+14155550100",
            "stage": "early",
            "amount_owed": {"amount_minor": 5, "currency": "USD"},
            "due_date": "2026-11-01",
            "external_id": f"{t}-0",
        },
    )
    assert pre.status_code == 201
    body = csv_text([csv_row(f"{t}-{i}") for i in range(0, 70)] + [csv_row(f"{t}-bad", phone="1")])
    resp = await upload(client, body.encode(), params={"campaign_id": str(campaign_id)})
    assert resp.status_code == 202, resp.text
    assert resp.json()["campaign_id"] == str(campaign_id)
    done = await wait_done(client, resp.json()["id"])
    assert done["counts"]["created"] == 69 and done["counts"]["duplicates"] == 1
    async with sessions() as s:
        items = await s.scalar(
            select(func.count())
            .select_from(CampaignItem)
            .where(CampaignItem.campaign_id == campaign_id)
        )
    assert items == 70
    # Same file, no campaign: another import (the campaign is part of what makes it the same).
    plain = await upload(client, body.encode())
    assert plain.status_code == 202 and plain.json()["id"] != resp.json()["id"]
    async with sessions() as s, s.begin():
        campaign = await s.get(Campaign, campaign_id)
        assert campaign is not None
        campaign.status = "cancelled"
    closed = await upload(client, b"x", params={"campaign_id": str(campaign_id)})
    assert closed.status_code == 422


async def test_a_batch_is_handled_once_and_a_lost_file_fails_the_import(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    import_settings: Settings,
) -> None:
    t = tag()
    resp = await upload(client, csv_text([csv_row(f"{t}-{i}") for i in range(60)]).encode())
    job_id = uuid.UUID(resp.json()["id"])
    done = await wait_done(client, resp.json()["id"])
    worker = ImportBatchHandler(import_settings, GcsBlobStore(import_settings))
    async with sessions() as s:
        row = await s.scalar(
            select(OutboxMessage).where(OutboxMessage.ce_id == batch_event_id(job_id, 0))
        )
    assert row is not None and row.ce_type == "import.batch_requested"
    event = CloudEvent(
        id=row.ce_id, type=row.ce_type, source=row.ce_source, time=row.ce_time, data=row.payload
    )
    # Redelivered to the worker's consumer: its ce-id was recorded with the batch's rows.
    await IdempotentHandler("import-worker", sessions, worker)(event)
    # Even without that record, a completed import takes no more batches.
    async with sessions() as s, s.begin():
        await worker(s, event)
    again = (await client.get(f"/v1/debtor-imports/{job_id}")).json()
    assert again["counts"] == done["counts"] and again["counts"]["created"] == 60

    # The stored file is gone before a batch could be read: the import fails, and says so.
    lost = DebtorImport(
        id=uuid.uuid4(),
        status="queued",
        format="csv",
        size_bytes=10,
        content_sha256="0" * 64,
        fingerprint=uuid.uuid4().hex * 2,
        blob_key=f"imports/missing-{t}",
        columns=COLUMNS,
        rows_total=1,
        rows_processed=0,
        created_count=0,
        duplicate_count=0,
        failed_count=0,
        batches_total=1,
        batches_done=0,
    )
    async with sessions() as s, s.begin():
        s.add(lost)
    batch = CloudEvent.create(
        "import.batch_requested",
        "/tests",
        {
            "import_id": str(lost.id),
            "batch_index": 0,
            "first_row": 1,
            "row_count": 1,
            "byte_start": 0,
            "byte_end": 10,
        },
    )
    async with sessions() as s, s.begin():
        await worker(s, batch)
    failed = (await client.get(f"/v1/debtor-imports/{lost.id}")).json()
    assert failed["status"] == "failed" and failed["completed_at"] is not None
    async with sessions() as s:
        assert (
            await s.scalar(
                select(OutboxMessage.ce_type).where(
                    OutboxMessage.ce_id == completed_event_id(lost.id)
                )
            )
            == "import.completed"
        )
