"""The campaign routes on the real app (in-process) and PostgreSQL: CRUD, assignment, items,
lifecycle actions with their audit, and the problem answers."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.models.operator import OperatorAction
from tests.campaigns.campaign_support import (
    act,
    assign,
    campaign_body,
    create_campaign,
    items_of,
    new_debtors,
)
from tests.campaigns.conftest import OPS_KEY, OPS_LABEL

CONFLICT = "urn:problem:campaign-status-conflict"


async def test_create_get_and_list(api: httpx.AsyncClient) -> None:
    resp = await api.post("/v1/campaigns", json=campaign_body(name="Create me"))
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert resp.headers["Location"] == f"/v1/campaigns/{created['id']}"
    assert created["status"] == "draft"
    assert created["stage"] == "early"
    assert created["pacing"] == {"max_concurrent_calls": 2, "calls_per_minute": 10}
    assert created["prompt_variants"] == {"default": 1}
    assert created["items"]["total"] == 0 and created["items"]["pending"] == 0
    assert created["started_at"] is None and created["ended_at"] is None

    got = (await api.get(f"/v1/campaigns/{created['id']}")).json()
    assert got == created
    drafts = (await api.get("/v1/campaigns", params={"status": "draft", "limit": 100})).json()
    assert created["id"] in [c["id"] for c in drafts["data"]]
    assert all(c["status"] == "draft" for c in drafts["data"])
    running = (await api.get("/v1/campaigns", params={"status": "running", "limit": 100})).json()
    assert created["id"] not in [c["id"] for c in running["data"]]


async def test_list_pages_with_a_cursor(api: httpx.AsyncClient) -> None:
    ids = {(await create_campaign(api, name=f"Paged {i}"))["id"] for i in range(3)}
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/v1/campaigns", params=params)).json()
        seen += [c["id"] for c in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert ids <= set(seen)
    assert len(seen) == len(set(seen))
    foreign = await api.get("/v1/campaigns", params={"cursor": "bm90LWEtY3Vyc29y"})
    assert foreign.status_code == 400


async def test_idempotency_key(api: httpx.AsyncClient) -> None:
    key = f"camp-{uuid.uuid4()}"
    body = campaign_body(name="Idempotent")
    first = await api.post("/v1/campaigns", json=body, headers={"Idempotency-Key": key})
    again = await api.post("/v1/campaigns", json=body, headers={"Idempotency-Key": key})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    other = await api.post(
        "/v1/campaigns", json=campaign_body(name="Other"), headers={"Idempotency-Key": key}
    )
    assert other.status_code == 409
    assert other.json()["type"] == "urn:problem:idempotency-key-reused"


async def test_invalid_bodies(api: httpx.AsyncClient) -> None:
    cases = [
        (campaign_body(prompt_variants={"no_such_variant": 1}), "body.prompt_variants"),
        (campaign_body(prompt_variants={"default": 0}), "body.prompt_variants"),
        (campaign_body(pacing={"max_concurrent_calls": 0, "calls_per_minute": 1}), None),
        (campaign_body(pacing={"max_concurrent_calls": 1}), None),
        (campaign_body(name="   "), None),
        (campaign_body(colour="blue"), None),
        (campaign_body(stage="recovery"), None),
    ]
    for body, field in cases:
        resp = await api.post("/v1/campaigns", json=body)
        assert resp.status_code == 422, (body, resp.text)
        problem = resp.json()
        assert problem["type"] == "urn:problem:validation-error"
        if field:
            assert [e["field"] for e in problem["errors"]] == [field]


async def test_assign_debtors_idempotently(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    campaign = await create_campaign(api)
    a, b, c = await new_debtors(sessions, 3)
    assert await assign(api, campaign["id"], [a, b, a]) == {"added": 2, "total": 2}
    assert await assign(api, campaign["id"], [b, a]) == {"added": 0, "total": 2}
    assert await assign(api, campaign["id"], [c, a]) == {"added": 1, "total": 3}
    unknown = uuid.uuid4()
    resp = await api.post(
        f"/v1/campaigns/{campaign['id']}/debtors",
        json={"debtor_ids": [str(a), str(unknown)]},
    )
    assert resp.status_code == 422
    assert [e["field"] for e in resp.json()["errors"]] == ["body.debtor_ids.1"]
    got = (await api.get(f"/v1/campaigns/{campaign['id']}")).json()
    assert got["items"]["total"] == 3 and got["items"]["pending"] == 3
    assert sorted(i.debtor_id for i in await items_of(sessions, campaign["id"])) == sorted(
        [a, b, c]
    )


async def test_items_list_filters_and_pages(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    campaign = await create_campaign(api)
    debtors = await new_debtors(sessions, 3)
    await assign(api, campaign["id"], debtors)
    first = (await api.get(f"/v1/campaigns/{campaign['id']}/items", params={"limit": 2})).json()
    assert len(first["data"]) == 2 and first["next_cursor"]
    rest = (
        await api.get(
            f"/v1/campaigns/{campaign['id']}/items",
            params={"limit": 2, "cursor": first["next_cursor"]},
        )
    ).json()
    listed = [i["debtor_id"] for i in first["data"] + rest["data"]]
    assert sorted(listed) == sorted(str(d) for d in debtors)
    item = first["data"][0]
    assert item["status"] == "pending" and item["call_id"] is None
    assert item["campaign_id"] == campaign["id"]
    done = await api.get(f"/v1/campaigns/{campaign['id']}/items", params={"status": "done"})
    assert done.json() == {"data": [], "next_cursor": None}
    # A cursor of another list (or other filters) is refused, not silently restarted.
    other = await api.get(
        f"/v1/campaigns/{campaign['id']}/items",
        params={"status": "pending", "cursor": first["next_cursor"]},
    )
    assert other.status_code == 400


async def test_lifecycle_and_audit(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    campaign = await create_campaign(api)
    cid = campaign["id"]
    ops = {"Authorization": f"Bearer {OPS_KEY}"}

    empty = await act(api, cid, "start")
    assert empty.status_code == 409 and empty.json()["type"] == CONFLICT
    await assign(api, cid, await new_debtors(sessions, 2))
    for action in ("pause", "resume"):  # not from draft
        resp = await act(api, cid, action)
        assert resp.status_code == 409 and resp.json()["type"] == CONFLICT, action

    started = await api.post(f"/v1/campaigns/{cid}/start", json={"reason": "go"}, headers=ops)
    assert started.status_code == 200, started.text
    assert started.json()["status"] == "running" and started.json()["started_at"]
    assert (await act(api, cid, "start")).status_code == 409
    patched = await api.patch(f"/v1/campaigns/{cid}", json={"name": "renamed"})
    assert patched.status_code == 409 and patched.json()["type"] == CONFLICT

    paused = await act(api, cid, "pause", reason="client asked")
    assert paused.json()["status"] == "paused"
    patched = await api.patch(
        f"/v1/campaigns/{cid}",
        json={"pacing": {"max_concurrent_calls": 1, "calls_per_minute": 5}, "name": "slower"},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["pacing"] == {"max_concurrent_calls": 1, "calls_per_minute": 5}
    assert patched.json()["name"] == "slower"
    nulled = await api.patch(f"/v1/campaigns/{cid}", json={"name": None})
    assert nulled.status_code == 422
    assert [e["field"] for e in nulled.json()["errors"]] == ["body.name"]
    bad_variant = await api.patch(f"/v1/campaigns/{cid}", json={"prompt_variants": {"x": 1}})
    assert bad_variant.status_code == 422

    assert (await act(api, cid, "resume")).json()["status"] == "running"
    cancelled = await api.post(f"/v1/campaigns/{cid}/cancel", json={"reason": "done"}, headers=ops)
    assert cancelled.status_code == 200
    body = cancelled.json()
    assert body["status"] == "cancelled" and body["ended_at"]
    assert body["items"]["cancelled"] == 2 and body["items"]["pending"] == 0
    for action in ("start", "pause", "resume", "cancel"):
        assert (await act(api, cid, action)).status_code == 409, action
    late = await api.post(f"/v1/campaigns/{cid}/debtors", json={"debtor_ids": [str(uuid.uuid4())]})
    assert late.status_code == 409 and late.json()["type"] == CONFLICT

    async with sessions() as s:
        audit = (
            await s.scalars(
                select(OperatorAction)
                .where(OperatorAction.target_id == uuid.UUID(cid))
                .order_by(OperatorAction.created_at, OperatorAction.id)
            )
        ).all()
    assert [(a.action, a.actor, a.reason) for a in audit] == [
        ("campaign.start", OPS_LABEL, "go"),
        ("campaign.pause", "default", "client asked"),
        ("campaign.resume", "default", None),
        ("campaign.cancel", OPS_LABEL, "done"),
    ]
    assert all(a.target_kind == "campaign" for a in audit)
    assert audit[-1].details["cancelled_items"] == 2


async def test_unknown_campaign_is_404(api: httpx.AsyncClient) -> None:
    cid = uuid.uuid4()
    responses = [
        await api.get(f"/v1/campaigns/{cid}"),
        await api.patch(f"/v1/campaigns/{cid}", json={"name": "x"}),
        await api.get(f"/v1/campaigns/{cid}/items"),
        await api.post(f"/v1/campaigns/{cid}/debtors", json={"debtor_ids": [str(cid)]}),
        await act(api, str(cid), "start"),
    ]
    assert [r.status_code for r in responses] == [404] * 5
    assert all(r.headers["content-type"] == "application/problem+json" for r in responses)


async def test_transition_body_is_strict(api: httpx.AsyncClient) -> None:
    campaign = await create_campaign(api)
    resp = await api.post(f"/v1/campaigns/{campaign['id']}/cancel", json={"why": "x"})
    assert resp.status_code == 422
    resp = await api.post(f"/v1/campaigns/{campaign['id']}/cancel", json={"reason": ""})
    assert resp.status_code == 422
    no_key = await api.post(
        f"/v1/campaigns/{campaign['id']}/cancel", headers={"Authorization": "Bearer wrong"}
    )
    assert no_key.status_code == 401
