"""The REST API in-process against real PostgreSQL: auth, validation, idempotency, conflicts,
pagination, call history and webhook endpoints, all errors as problem+json."""

from __future__ import annotations

import asyncio
import base64
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from generated.call import Call as CallModel
from generated.call_requested import CallRequested
from generated.client_api import (
    Debtor,
    DebtorPage,
    Problem,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
)
from scripts.processes import ServiceProcess
from services.client_api.app import create_app
from services.client_api.validation import is_valid_phone, webhook_endpoint_errors
from services.client_api.webhooks.secrets import decrypt_secret
from services.common import models
from services.common.blobstore import GcsBlobStore
from services.common.settings import Settings
from tests.client_api.conftest import API_KEY, create_debtor, debtor_body


def assert_problem(resp: httpx.Response, status: int, type_: str | None = None) -> Problem:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    problem = Problem.model_validate(resp.json())
    assert problem.status == status
    if type_ is not None:
        assert problem.type == type_
    return problem


# --- auth ---------------------------------------------------------------------------------


async def test_healthz_openapi_and_docs_need_no_key(api_server: ServiceProcess) -> None:
    async with httpx.AsyncClient(base_url=api_server.url) as anon:
        health = await anon.get("/healthz")
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        assert (await anon.get("/openapi.json")).status_code == 200
        assert (await anon.get("/docs")).status_code == 200
        assert (await anon.get("/redoc")).status_code == 200


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-key", f"Basic {API_KEY}", f"Bearer{API_KEY}", "Bearer", f"{API_KEY}"],
)
async def test_v1_routes_need_the_api_key(
    api_server: ServiceProcess, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    async with httpx.AsyncClient(base_url=api_server.url, headers=headers) as anon:
        debtor_id = uuid.uuid4()
        for method, path, body in [
            ("GET", "/v1/debtors", None),
            ("POST", "/v1/debtors", debtor_body()),
            ("GET", f"/v1/debtors/{debtor_id}", None),
            ("POST", f"/v1/debtors/{debtor_id}/calls", None),
            ("GET", "/v1/calls", None),
            ("GET", f"/v1/calls/{uuid.uuid4()}", None),
            ("POST", "/v1/webhook-endpoints", {"url": "https://example.com/h"}),
            ("GET", "/v1/webhook-endpoints", None),
            ("GET", "/v1/webhook-deliveries", None),
        ]:
            resp = await anon.request(method, path, json=body)
            assert_problem(resp, 401, "urn:problem:unauthorized")
            assert resp.headers["www-authenticate"] == "Bearer"
        # Unreadable or invalid input does not get past the missing key either.
        resp = await anon.post(
            "/v1/debtors", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert_problem(resp, 401)
        assert_problem(await anon.post("/v1/debtors", json={"name": 1}), 401)


# --- debtors ------------------------------------------------------------------------------


async def test_create_and_get_debtor(client: httpx.AsyncClient) -> None:
    body = debtor_body()
    resp = await client.post("/v1/debtors", json=body)
    assert resp.status_code == 201, resp.text
    debtor = Debtor.model_validate(resp.json())
    assert resp.headers["location"] == f"/v1/debtors/{debtor.id}"
    assert debtor.name == body["name"] and debtor.phone == body["phone"]
    assert debtor.amount_owed.amount_minor == 45000 and debtor.amount_owed.currency == "USD"
    assert debtor.metadata == {"portfolio": "spring-2026"}
    got = await client.get(f"/v1/debtors/{debtor.id}")
    assert got.status_code == 200 and got.json() == resp.json()


async def test_optional_debtor_fields_default(client: httpx.AsyncClient) -> None:
    body = debtor_body()
    for key in ("account_reference", "external_id", "metadata"):
        body.pop(key)
    debtor = Debtor.model_validate((await client.post("/v1/debtors", json=body)).json())
    assert debtor.external_id is None and debtor.account_reference is None
    assert debtor.metadata == {}


async def test_unknown_debtor_is_404_and_bad_id_422(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get(f"/v1/debtors/{uuid.uuid4()}"), 404, "urn:problem:not-found")
    problem = assert_problem(await client.get("/v1/debtors/not-a-uuid"), 422)
    assert problem.errors and problem.errors[0].field == "path.debtor_id"


def _without(key: str) -> dict[str, Any]:
    body = debtor_body()
    body.pop(key)
    return body


VALIDATION_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("phone not E.164", debtor_body(phone="4155550123"), "body.phone"),
    ("phone with spaces", debtor_body(phone="+1 415 555 0123"), "body.phone"),
    ("phone that cannot exist", debtor_body(phone="+15550100042"), "body.phone"),
    ("phone of unknown country code", debtor_body(phone="+9991234567"), "body.phone"),
    ("unknown stage", debtor_body(stage="very_late"), "body.stage"),
    (
        "negative amount",
        debtor_body(amount_owed={"amount_minor": -1, "currency": "USD"}),
        "body.amount_owed.amount_minor",
    ),
    (
        "fractional amount",
        debtor_body(amount_owed={"amount_minor": 10.5, "currency": "USD"}),
        "body.amount_owed.amount_minor",
    ),
    (
        "amount beyond 2^53-1",
        debtor_body(amount_owed={"amount_minor": 2**53, "currency": "USD"}),
        "body.amount_owed.amount_minor",
    ),
    (
        "unknown currency",
        debtor_body(amount_owed={"amount_minor": 100, "currency": "ABC"}),
        "body.amount_owed.currency",
    ),
    (
        "lower-case currency",
        debtor_body(amount_owed={"amount_minor": 100, "currency": "usd"}),
        "body.amount_owed.currency",
    ),
    ("unknown time zone", debtor_body(timezone="Mars/Olympus_Mons"), "body.timezone"),
    ("time zone not a name", debtor_body(timezone="+05:00"), "body.timezone"),
    ("name too long", debtor_body(name="x" * 201), "body.name"),
    ("blank name", debtor_body(name="   "), "body.name"),
    ("NUL in name", debtor_body(name="Jane\x00Doe"), "body.name"),
    (
        "account reference too long",
        debtor_body(account_reference="A" * 65),
        "body.account_reference",
    ),
    ("external id too long", debtor_body(external_id="e" * 129), "body.external_id"),
    ("impossible due date", debtor_body(due_date="2026-02-30"), "body.due_date"),
    (
        "too many metadata keys",
        debtor_body(metadata={f"k{i}": "v" for i in range(51)}),
        "body.metadata",
    ),
    ("metadata value too long", debtor_body(metadata={"k": "v" * 501}), "body.metadata.k"),
    ("metadata value not a string", debtor_body(metadata={"k": 1}), "body.metadata.k"),
    ("unknown property", debtor_body(nickname="JD"), "body.nickname"),
    ("missing phone", _without("phone"), "body.phone"),
    ("missing amount", _without("amount_owed"), "body.amount_owed"),
]


@pytest.mark.parametrize(
    ("case", "body", "field"), VALIDATION_CASES, ids=[c[0] for c in VALIDATION_CASES]
)
async def test_invalid_debtor_is_422_naming_the_field_and_stores_nothing(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    case: str,
    body: dict[str, Any],
    field: str,
) -> None:
    async with sessions() as s:
        before = await s.scalar(select(func.count()).select_from(models.Debtor))
    problem = assert_problem(
        await client.post("/v1/debtors", json=body), 422, "urn:problem:validation-error"
    )
    assert problem.errors, case
    fields = [e.field for e in problem.errors]
    assert any(f == field or f.startswith(field + ".") for f in fields), (case, fields)
    async with sessions() as s:
        assert await s.scalar(select(func.count()).select_from(models.Debtor)) == before


async def test_malformed_json_is_400(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/v1/debtors", content=b'{"name": ', headers={"content-type": "application/json"}
    )
    assert_problem(resp, 400, "urn:problem:malformed-request")


async def test_duplicate_external_id_is_409(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    first = await create_debtor(client)
    resp = await client.post("/v1/debtors", json=debtor_body(external_id=first["external_id"]))
    assert_problem(resp, 409, "urn:problem:duplicate-external-id")
    # Racing creates with one external_id: exactly one wins.
    external_id = f"race-{uuid.uuid4().hex}"
    results = await asyncio.gather(
        *(client.post("/v1/debtors", json=debtor_body(external_id=external_id)) for _ in range(5))
    )
    assert sorted(r.status_code for r in results) == [201, 409, 409, 409, 409]
    async with sessions() as s:
        count = await s.scalar(
            select(func.count())
            .select_from(models.Debtor)
            .where(models.Debtor.external_id == external_id)
        )
    assert count == 1


async def test_oversized_body_is_413(client: httpx.AsyncClient) -> None:
    big = debtor_body(metadata={f"k{i}": "v" * 500 for i in range(40)})  # ~20 KiB > 16 KiB
    assert_problem(await client.post("/v1/debtors", json=big), 413, "urn:problem:payload-too-large")

    async def chunks() -> Any:  # no Content-Length: counted while read
        for _ in range(20):
            yield b" " * 1024

    resp = await client.post(
        "/v1/debtors", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_problem(resp, 413, "urn:problem:payload-too-large")


async def test_unknown_route_and_method_are_problems(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/v1/nothing-here"), 404)
    resp = await client.delete("/v1/debtors")
    assert_problem(resp, 405)
    assert set(resp.headers["allow"].split(", ")) == {"GET", "POST"}


async def test_unexpected_error_is_500_problem(api_settings: Settings) -> None:
    # In-process and without its lifespan, the app has no runtime: any route that needs the
    # database fails unexpectedly, which must still be a problem document, with no internals.
    app = create_app(api_settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
        base_url="http://t",
        headers={"Authorization": f"Bearer {API_KEY}"},
    ) as c:
        resp = await c.get(f"/v1/calls/{uuid.uuid4()}")
    problem = assert_problem(resp, 500)
    assert problem.type == "about:blank" and "runtime" not in resp.text


async def test_cursor_walks_every_debtor_once(client: httpx.AsyncClient) -> None:
    mine = {(await create_debtor(client))["id"] for _ in range(7)}
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        resp = await client.get("/v1/debtors", params=params)
        assert resp.status_code == 200, resp.text
        page = DebtorPage.model_validate(resp.json())
        assert len(page.data) <= 3
        seen.extend(str(d.id) for d in page.data)
        created = [(d.created_at, str(d.id)) for d in page.data]
        assert created == sorted(created, reverse=True)  # newest first
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(seen) == len(set(seen)), "a row was returned twice"
    assert mine <= set(seen)
    assert pages >= 3


async def test_bad_cursors_are_400(client: httpx.AsyncClient) -> None:
    for cursor in ["garbage", "%%%", base64.urlsafe_b64encode(b'{"k":"debtors"}').decode()]:
        assert_problem(
            await client.get("/v1/debtors", params={"cursor": cursor}),
            400,
            "urn:problem:invalid-cursor",
        )
    for _ in range(2):
        await create_debtor(client)
    debtors_cursor = (await client.get("/v1/debtors", params={"limit": 1})).json()["next_cursor"]
    assert debtors_cursor
    # a cursor of another list, or issued under other filters
    assert_problem(await client.get("/v1/calls", params={"cursor": debtors_cursor}), 400)
    assert_problem(
        await client.get("/v1/webhook-endpoints", params={"cursor": debtors_cursor}), 400
    )
    assert_problem(await client.get("/v1/debtors", params={"limit": 0}), 422)
    assert_problem(await client.get("/v1/debtors", params={"limit": 101}), 422)


# --- call triggers ------------------------------------------------------------------------


async def test_trigger_queues_call_and_event_in_one_transaction(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    debtor = await create_debtor(client, stage="late")
    resp = await client.post(f"/v1/debtors/{debtor['id']}/calls", json={"metadata": {"x": "1"}})
    assert resp.status_code == 202, resp.text
    call = CallModel.model_validate(resp.json())
    assert resp.headers["location"] == f"/v1/calls/{call.id}"
    assert "idempotent-replayed" not in resp.headers
    assert call.status.value == "queued" and call.stage.value == "late"
    assert call.metadata == {"x": "1"} and call.transcript == [] and call.outcome is None
    async with sessions() as s:
        rows = (
            await s.scalars(
                select(models.OutboxMessage).where(
                    models.OutboxMessage.payload["call_id"].astext == str(call.id)
                )
            )
        ).all()
    assert len(rows) == 1
    assert rows[0].topic == "call-requests" and rows[0].ce_type == "call.requested"
    assert rows[0].ce_source == "/client-api"
    requested = CallRequested.model_validate(rows[0].payload)
    assert str(requested.debtor_id) == debtor["id"] and requested.idempotency_key is None


async def test_second_trigger_while_live_is_409(client: httpx.AsyncClient) -> None:
    debtor = await create_debtor(client)
    assert (await client.post(f"/v1/debtors/{debtor['id']}/calls")).status_code == 202
    assert_problem(
        await client.post(f"/v1/debtors/{debtor['id']}/calls"),
        409,
        "urn:problem:call-already-active",
    )
    # Racing triggers without keys: the partial unique index lets exactly one through.
    other = await create_debtor(client)
    results = await asyncio.gather(
        *(client.post(f"/v1/debtors/{other['id']}/calls") for _ in range(5))
    )
    assert sorted(r.status_code for r in results) == [202, 409, 409, 409, 409]


async def test_trigger_after_the_call_ended_is_accepted(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    debtor = await create_debtor(client)
    first = (await client.post(f"/v1/debtors/{debtor['id']}/calls")).json()
    async with sessions() as s, s.begin():
        row = await s.get(models.Call, uuid.UUID(first["id"]))
        assert row is not None
        row.status = "no_answer"
    second = await client.post(f"/v1/debtors/{debtor['id']}/calls")
    assert second.status_code == 202 and second.json()["id"] != first["id"]


async def test_trigger_unknown_debtor_is_404(client: httpx.AsyncClient) -> None:
    assert_problem(await client.post(f"/v1/debtors/{uuid.uuid4()}/calls"), 404)
    assert_problem(await client.post("/v1/debtors/nope/calls"), 422)


async def test_idempotency_key_replays_and_refuses_other_requests(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    debtor = await create_debtor(client)
    key = f"key-{uuid.uuid4()}"
    path = f"/v1/debtors/{debtor['id']}/calls"
    first = await client.post(path, json={"metadata": {"a": "b"}}, headers={"Idempotency-Key": key})
    assert first.status_code == 202
    again = await client.post(path, json={"metadata": {"a": "b"}}, headers={"Idempotency-Key": key})
    assert again.status_code == 202 and again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == first.headers["location"]

    other_body = await client.post(
        path, json={"metadata": {"a": "c"}}, headers={"Idempotency-Key": key}
    )
    assert_problem(other_body, 409, "urn:problem:idempotency-key-reused")
    other_debtor = await create_debtor(client)
    assert_problem(
        await client.post(
            f"/v1/debtors/{other_debtor['id']}/calls",
            json={"metadata": {"a": "b"}},
            headers={"Idempotency-Key": key},
        ),
        409,
        "urn:problem:idempotency-key-reused",
    )
    async with sessions() as s:
        calls = (
            await s.scalars(
                select(models.Call).where(models.Call.debtor_id == uuid.UUID(debtor["id"]))
            )
        ).all()
        events = await s.scalar(
            select(func.count())
            .select_from(models.OutboxMessage)
            .where(models.OutboxMessage.payload["call_id"].astext == first.json()["id"])
        )
    assert len(calls) == 1 and events == 1
    assert calls[0].idempotency_key == key


async def test_no_body_and_empty_body_are_the_same_request(client: httpx.AsyncClient) -> None:
    debtor = await create_debtor(client)
    key = str(uuid.uuid4())
    path = f"/v1/debtors/{debtor['id']}/calls"
    first = await client.post(path, headers={"Idempotency-Key": key})
    second = await client.post(path, json={}, headers={"Idempotency-Key": key})
    third = await client.post(path, json={"metadata": {}}, headers={"Idempotency-Key": key})
    assert {r.status_code for r in (first, second, third)} == {202}
    assert first.json()["id"] == second.json()["id"] == third.json()["id"]


async def test_concurrent_retries_with_one_key_create_one_call(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    debtor = await create_debtor(client)
    key = str(uuid.uuid4())
    results = await asyncio.gather(
        *(
            client.post(f"/v1/debtors/{debtor['id']}/calls", headers={"Idempotency-Key": key})
            for _ in range(6)
        )
    )
    assert [r.status_code for r in results] == [202] * 6, [r.text for r in results]
    assert len({r.json()["id"] for r in results}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in results) == 5
    async with sessions() as s:
        count = await s.scalar(
            select(func.count())
            .select_from(models.Call)
            .where(models.Call.debtor_id == uuid.UUID(debtor["id"]))
        )
    assert count == 1


async def test_bad_trigger_input_is_422(client: httpx.AsyncClient) -> None:
    debtor = await create_debtor(client)
    path = f"/v1/debtors/{debtor['id']}/calls"
    problem = assert_problem(await client.post(path, json={"priority": 1}), 422)
    assert problem.errors and problem.errors[0].field == "body.priority"
    problem = assert_problem(await client.post(path, headers={"Idempotency-Key": "k" * 256}), 422)
    assert problem.errors and problem.errors[0].field == "header.Idempotency-Key"


# --- call history -------------------------------------------------------------------------


async def _completed_call(
    sessions: async_sessionmaker[AsyncSession], debtor_id: str, recording_uri: str | None
) -> uuid.UUID:
    """A finished call as the Voice Orchestrator leaves it in the database."""
    t0 = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
    call_id = uuid.uuid4()
    async with sessions() as s, s.begin():
        s.add(
            models.Call(
                id=call_id,
                debtor_id=uuid.UUID(debtor_id),
                status="completed",
                outcome="promise_to_pay",
                stage="early",
                prompt_version="early-v3",
                twilio_call_sid="CA" + "0" * 32,
                metadata_={"crm": "1"},
                dispatched_at=t0,
                started_at=t0,
                answered_at=t0 + timedelta(seconds=5),
                ended_at=t0 + timedelta(seconds=65),
                duration_seconds=60,
                recording_uri=recording_uri,
                transcript_uri=None,
                latency=[
                    {
                        "turn_index": 0,
                        "debtor_speech_end_at": None,
                        "stt_final_ms": None,
                        "llm_first_token_ms": 410,
                        "tts_first_byte_ms": 90,
                        "first_audio_out_ms": 540,
                        "voice_to_voice_ms": None,
                        "orchestrator_overhead_ms": None,
                        "barge_in_to_clear_ms": None,
                    },
                    {
                        "turn_index": 2,
                        "debtor_speech_end_at": (t0 + timedelta(seconds=12)).isoformat(),
                        "stt_final_ms": 300,
                        "llm_first_token_ms": 400,
                        "tts_first_byte_ms": 80,
                        "first_audio_out_ms": 800,
                        "voice_to_voice_ms": 800,
                        "orchestrator_overhead_ms": 20,
                        "barge_in_to_clear_ms": 45,
                    },
                ],
                usage={"telephony_seconds": 61, "llm_output_tokens": 120},
                cost={"telephony_micro_usd": 14000, "total_micro_usd": 21000},
            )
        )
        await s.flush()
        # written out of order on purpose: the API returns them by index
        for index, speaker, text, state in [
            (2, "agent", "Thanks, I have noted", "commitment"),
            (0, "agent", "Hello, this is Alex", "greeting"),
            (1, "debtor", "Yes, speaking", "verification"),
        ]:
            s.add(
                models.CallTurn(
                    call_id=call_id,
                    index=index,
                    speaker=speaker,
                    text=text,
                    state=state,
                    interrupted=index == 2,
                    started_at=t0 + timedelta(seconds=10 * index),
                    ended_at=t0 + timedelta(seconds=10 * index + 5),
                )
            )
        s.add(
            models.PaymentPromise(
                call_id=call_id, amount_minor=20000, currency="USD", due_date=date(2026, 12, 5)
            )
        )
        s.add(
            models.Callback(
                call_id=call_id, scheduled_for=t0 + timedelta(days=2), reason="check payment"
            )
        )
    return call_id


async def test_call_history_has_transcript_outcome_links_and_latency(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    api_settings: Settings,
) -> None:
    debtor = await create_debtor(client)
    blobs = GcsBlobStore(api_settings)
    key = f"recordings/{uuid.uuid4()}.wav"
    uri = await blobs.put(key, b"RIFF-test-audio", "audio/wav")
    call_id = await _completed_call(sessions, debtor["id"], uri)

    resp = await client.get(f"/v1/calls/{call_id}")
    assert resp.status_code == 200, resp.text
    call = CallModel.model_validate(resp.json())
    assert (
        call.status.value == "completed" and call.outcome and call.outcome.value == "promise_to_pay"
    )
    assert [t.index for t in call.transcript] == [0, 1, 2]
    assert [t.speaker.value for t in call.transcript] == ["agent", "debtor", "agent"]
    assert call.transcript[2].interrupted and not call.transcript[1].interrupted
    assert call.payment_promise is not None
    assert call.payment_promise.amount.amount_minor == 20000
    assert call.payment_promise.due_date == date(2026, 12, 5)
    assert call.callback is not None and call.callback.reason == "check payment"
    assert [lat.turn_index for lat in call.latency] == [0, 2]
    assert call.latency[1].voice_to_voice_ms == 800
    assert call.usage is not None and call.usage.telephony_seconds == 61
    assert call.cost is not None and call.cost.total_micro_usd == 21000
    assert call.transcript_url is None
    assert call.recording_url and call.recording_url.startswith("http")
    async with httpx.AsyncClient() as plain:  # the link is fetchable as is
        fetched = await plain.get(call.recording_url)
    assert fetched.status_code == 200 and fetched.content == b"RIFF-test-audio"

    listed = (await client.get("/v1/calls", params={"debtor_id": debtor["id"]})).json()
    assert [c["id"] for c in listed["data"]] == [str(call_id)]
    assert listed["data"][0] == resp.json() | {"recording_url": listed["data"][0]["recording_url"]}
    by_status = await client.get(
        "/v1/calls", params={"debtor_id": debtor["id"], "status": "queued"}
    )
    assert by_status.json() == {"data": [], "next_cursor": None}
    assert_problem(await client.get("/v1/calls", params={"status": "bogus"}), 422)
    assert_problem(await client.get(f"/v1/calls/{uuid.uuid4()}"), 404)


async def test_call_list_walks_pages_with_filters(client: httpx.AsyncClient) -> None:
    created: set[str] = set()
    for _ in range(4):
        debtor = await create_debtor(client)
        created.add((await client.post(f"/v1/debtors/{debtor['id']}/calls")).json()["id"])
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"status": "queued", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        body = (await client.get("/v1/calls", params=params)).json()
        assert all(c["status"] == "queued" for c in body["data"])
        seen += [c["id"] for c in body["data"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
        # the same cursor under another filter is refused
        assert_problem(
            await client.get("/v1/calls", params={"status": "completed", "cursor": cursor}), 400
        )
    assert len(seen) == len(set(seen)) and created <= set(seen)


# --- webhook endpoints --------------------------------------------------------------------


async def test_webhook_endpoint_secret_is_shown_once_and_stored_encrypted(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    api_settings: Settings,
) -> None:
    resp = await client.post(
        "/v1/webhook-endpoints",
        json={
            "url": "https://example.com/hooks",
            "description": "prod",
            "events": ["call.completed"],
        },
    )
    assert resp.status_code == 201, resp.text
    created = WebhookEndpointCreated.model_validate(resp.json())
    assert created.secret.startswith("whsec_")
    assert len(base64.b64decode(created.secret.removeprefix("whsec_"))) == 24
    async with sessions() as s:
        row = await s.get(models.WebhookEndpoint, created.id)
    assert row is not None and created.secret not in row.secret_ciphertext
    assert decrypt_secret(row.secret_ciphertext, api_settings) == created.secret

    listed = (await client.get("/v1/webhook-endpoints", params={"limit": 100})).json()
    mine = [e for e in listed["data"] if e["id"] == str(created.id)]
    assert mine and "secret" not in mine[0]
    assert mine[0]["events"] == ["call.completed"] and mine[0]["description"] == "prod"
    assert "whsec_" not in str(listed)

    default = await client.post("/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/h"})
    assert default.status_code == 201 and default.json()["events"] == ["call.completed"]


@pytest.mark.parametrize(
    "body",
    [
        {"url": "ftp://example.com/h"},
        {"url": "not a url"},
        {"url": "https://"},
        {"url": "https://example.com/h", "events": []},
        {"url": "https://example.com/h", "events": ["call.completed", "call.completed"]},
        {"url": "https://example.com/h", "events": ["call.started"]},
        {"url": "https://example.com/h", "secret": "whsec_abc"},
        {"url": "https://example.com/" + "a" * 2048},
    ],
)
async def test_invalid_webhook_endpoint_is_422(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    problem = assert_problem(await client.post("/v1/webhook-endpoints", json=body), 422)
    assert problem.errors and problem.errors[0].field.startswith("body.")


def test_production_requires_public_https_endpoints(settings: Settings) -> None:
    prod = settings.model_copy(update={"environment": "production"})
    for url, ok in [
        ("https://hooks.example.com/x", True),
        ("http://hooks.example.com/x", False),
        ("https://127.0.0.1/x", False),
        ("https://10.1.2.3/x", False),
        ("https://localhost:8443/x", False),
        ("https://[::1]/x", False),
    ]:
        errors = webhook_endpoint_errors(WebhookEndpointCreate(url=url), prod)
        assert (errors == []) is ok, (url, errors)
        if not ok:
            assert errors[0][0] == "body.url"
    assert webhook_endpoint_errors(WebhookEndpointCreate(url="http://127.0.0.1/x"), settings) == []


def test_phone_validation_uses_libphonenumber() -> None:
    assert is_valid_phone("+14155550123")
    assert is_valid_phone("+442071838750")
    assert not is_valid_phone("+15550100042")  # 555-01xx is fictional
    assert not is_valid_phone("+1415555012")  # too short
    assert not is_valid_phone("+4402071838750")  # national trunk prefix is not E.164
