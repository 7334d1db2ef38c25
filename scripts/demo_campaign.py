"""`./scripts/demo --campaign N`: a campaign of N debtors, from a CSV import to its stats.

Generates a CSV of N debtors (mixed personas and US time zones, plus a few rows the import
must refuse), imports it into a new campaign through `POST /v1/debtor-imports`, starts the
campaign with pacing and follows it with a live progress line. At the end: the import's refused
rows, each debtor's call, payments reported for some of the promises, the campaign's stats per
prompt variant and the webhook events received, by type.
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from generated.client_api import WebhookEventType
from scripts.calls import assign_persona
from scripts.webhook_receiver import WebhookReceiver
from services.client_api.imports_rows import COLUMNS as IMPORT_COLUMNS
from simulators.personas import load_personas

# The demo's receiver takes every event type there is.
WEBHOOK_EVENT_TYPES = [t.value for t in WebhookEventType]
# Personas that talk, and a few that do not answer: a realistic mix for one campaign.
CAMPAIGN_PERSONAS = (
    "cooperative",
    "negotiator",
    "callback_later",
    "questioner",
    "haggler",
    "disputes",
    "stop_calling",
    "wrong_person",
    "busy",
    "no_answer",
    "voicemail",
    "cooperative",
)
# A zone and an area code of that zone (the calling rules read both).
ZONES = (
    ("America/New_York", "212"),
    ("America/Chicago", "312"),
    ("America/Denver", "720"),
    ("America/Phoenix", "602"),
    ("America/Los_Angeles", "415"),
    ("America/Anchorage", "907"),
    ("Pacific/Honolulu", "808"),
)
# Local hours the demo treats as open: inside 08:00-21:00 with room for the calls to finish.
OPEN_FROM, OPEN_UNTIL = 8, 20
# Demo override when no US zone is open right now (the services' window is configurable).
ALL_DAY_ENV = {"CALL_WINDOW_START": "00:00", "CALL_WINDOW_END": "23:59"}
PACING = {"max_concurrent_calls": 4, "calls_per_minute": 12}
VARIANTS = {"default": 1, "plan_first": 1}
BAD_ROWS = (
    ({"phone": "555-0100"}, "a phone number that is not E.164"),
    ({"amount_owed_minor": "-500"}, "a negative balance"),
    ({"stage": "very_late"}, "an unknown stage"),
)
# The import's columns (docs/imports.md), with the persona as one metadata value.
COLUMNS = (*(c for c in IMPORT_COLUMNS if c != "metadata"), "metadata.persona")
FIRST = ("Ava", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Iris", "Jonas")
LAST = ("Moreau", "Okafor", "Lindqvist", "Tanaka", "Silva", "Novak", "Haddad", "Byrne")


def open_zones(now: datetime) -> list[tuple[str, str]]:
    """The zones in which it is now between OPEN_FROM and OPEN_UNTIL o'clock."""
    return [
        (zone, area)
        for zone, area in ZONES
        if OPEN_FROM <= now.astimezone(ZoneInfo(zone)).hour < OPEN_UNTIL
    ]


def campaign_env(now: datetime) -> dict[str, str]:
    """Service settings for the demo: the calling window widened only if no zone is open."""
    return {} if open_zones(now) else dict(ALL_DAY_ENV)


def debtor_rows(n: int, now: datetime, tag: str) -> list[dict[str, str]]:
    """N good rows (personas and zones mixed) followed by the bad ones."""
    zones = open_zones(now) or list(ZONES)
    personas = load_personas()
    rows = []
    for i in range(n):
        zone, area = zones[i % len(zones)]
        persona = CAMPAIGN_PERSONAS[i % len(CAMPAIGN_PERSONAS)]
        # The facts on file are the ones the persona gives when asked (or gets wrong on purpose).
        facts = dict.fromkeys(("date_of_birth", "postal_code", "account_reference"), "")
        facts |= personas[persona].facts
        rows.append(
            facts
            | {
                "external_id": f"demo-{tag}-{i:03d}",
                "name": f"{FIRST[i % len(FIRST)]} {LAST[(i // len(FIRST)) % len(LAST)]}",
                "phone": f"+1{area}555{100 + i % 100:04d}",
                "timezone": zone,
                "stage": "early",
                "amount_owed_minor": str(25_000 + 1_250 * (i % 17)),
                "currency": "USD",
                "due_date": (now.date() - timedelta(days=10 + i % 20)).isoformat(),
                "metadata.persona": persona,
            }
        )
    for j, (bad, _why) in enumerate(BAD_ROWS):
        rows.append(rows[j] | {"external_id": f"demo-{tag}-bad-{j}"} | bad)
    return rows


def to_csv(rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def rate(bp: int | None) -> str:
    return "-" if bp is None else f"{bp / 100:.1f}%"


def usd(micro: int | None) -> str:
    return "-" if micro is None else f"${micro / 1_000_000:.4f}"


def stats_table(stats: dict[str, Any]) -> list[str]:
    head = (
        f"  {'variant':<12} {'placed':>6} {'connect':>8} {'RPC':>7} {'promise':>8} "
        f"{'kept':>7} {'$/call':>9} {'$/kept':>9}"
    )
    lines = [head]
    rows = [(v["variant"], v["funnel"]) for v in stats["variants"]]
    for name, f in [*rows, ("all", stats["total"])]:
        lines.append(
            f"  {name:<12} {f['calls_placed']:>6} {rate(f['connection_rate_bp']):>8} "
            f"{rate(f['right_party_contact_rate_bp']):>7} {rate(f['promise_rate_bp']):>8} "
            f"{rate(f['kept_rate_bp']):>7} {usd(f['cost_per_call_micro_usd']):>9} "
            f"{usd(f['cost_per_kept_promise_micro_usd']):>9}"
        )
    return lines


async def _ok(resp: httpx.Response) -> dict[str, Any]:
    resp.raise_for_status()
    body: dict[str, Any] = resp.json()
    return body


async def _wait_import(api: httpx.AsyncClient, job: dict[str, Any], timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while job["status"] in ("queued", "processing") and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        job = await _ok(await api.get(f"/v1/debtor-imports/{job['id']}"))
    return job


async def _all(api: httpx.AsyncClient, path: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, "limit": 100} | ({"cursor": cursor} if cursor else {})
        page = await _ok(await api.get(path, params=query))
        items += page["data"]
        cursor = page.get("next_cursor")
        if not cursor:
            return items


def _progress(campaign: dict[str, Any], started: float) -> str:
    c = campaign["items"]
    return (
        f"  [{time.monotonic() - started:6.1f}s]  {campaign['status']:<9} items: "
        f"{c['pending']} pending, {c['scheduled']} scheduled, {c['in_progress']} on a call, "
        f"{c['done']} done, {c['skipped']} skipped"
    )


async def run_campaign(
    api: httpx.AsyncClient,
    sim: httpx.AsyncClient | None,
    receiver: WebhookReceiver,
    n: int,
    timeout_s: float,
    say: Callable[[str], None],
) -> int:
    now = datetime.now(UTC)
    tag = now.strftime("%H%M%S")
    zones = open_zones(now)
    say("\n== debtors file")
    if zones:
        shut = sorted({z for z, _ in ZONES} - {z for z, _ in zones})
        say(f"  zones open now: {', '.join(z for z, _ in zones)}")
        if shut:
            say(f"  left out (outside 08:00-20:00 local now): {', '.join(shut)}")
    else:
        say("  no US zone is inside its calling window now: the demo widened the window")
        say(f"  ({ALL_DAY_ENV}); production keeps 08:00-21:00 local")
    rows = debtor_rows(n, now, tag)
    body = to_csv(rows)
    if sim is not None:
        for row in rows[:n]:
            await assign_persona(sim, row["phone"], row["metadata.persona"])
    personas = Counter(r["metadata.persona"] for r in rows[:n])
    say(f"  {n} debtors ({', '.join(f'{p} {k}' for p, k in sorted(personas.items()))})")
    say(f"  + {len(BAD_ROWS)} bad rows: {'; '.join(why for _, why in BAD_ROWS)}")

    say("\n== campaign")
    campaign = await _ok(
        await api.post(
            "/v1/campaigns",
            json={
                "name": f"Demo campaign {tag}",
                "stage": "early",
                "pacing": PACING,
                "prompt_variants": VARIANTS,
            },
            headers={"Idempotency-Key": f"demo-campaign-{tag}"},
        )
    )
    say(f"  {campaign['id']}: pacing {PACING}, variants {VARIANTS}")

    say("\n== import")
    job = await _ok(
        await api.post(
            "/v1/debtor-imports",
            params={"campaign_id": campaign["id"]},
            content=body,
            headers={"Content-Type": "text/csv"},
        )
    )
    job = await _wait_import(api, job, 60)
    counts = job["counts"]
    say(
        f"  import {job['id']}: {job['status']}, {counts['rows_total']} rows, "
        f"{counts['created']} created, {counts['duplicates']} duplicates, "
        f"{counts['failed']} refused"
    )
    for err in await _all(api, f"/v1/debtor-imports/{job['id']}/errors"):
        say(f"    row {err['row']}: {err['field']}: {err['reason']}")

    await _ok(await api.post(f"/v1/campaigns/{campaign['id']}/start", json={"reason": "demo"}))
    say("\n== progress")
    started = time.monotonic()
    last = ""
    while campaign["status"] not in ("completed", "cancelled"):
        if time.monotonic() - started > timeout_s:
            say(f"  timed out after {timeout_s:.0f}s")
            break
        campaign = await _ok(await api.get(f"/v1/campaigns/{campaign['id']}"))
        line = _progress(campaign, started)
        if line.split("]", 1)[1] != last:
            say(line)
            last = line.split("]", 1)[1]
        await asyncio.sleep(0.5)

    say("\n== calls")
    items = await _all(api, f"/v1/campaigns/{campaign['id']}/items")
    by_debtor = {r["external_id"]: r for r in rows}
    debtors = {d["id"]: d for d in await _all(api, "/v1/debtors")}
    for item in items:
        call = await _ok(await api.get(f"/v1/calls/{item['call_id']}")) if item["call_id"] else {}
        debtor = debtors.get(item["debtor_id"], {})
        persona = by_debtor.get(debtor.get("external_id", ""), {}).get("metadata.persona", "?")
        say(
            f"  {persona:<15} {item['status']:<9} {call.get('status', '-'):<10} "
            f"{call.get('outcome') or '-':<19} variant {call.get('prompt_variant') or '-'}"
        )

    say("\n== payments (the client reports what was paid)")
    promises = await _all(api, "/v1/promises")
    ours = [p for p in promises if p["debtor_id"] in {i["debtor_id"] for i in items}]
    for k, promise in enumerate(ours):
        if k % 2:
            continue  # every other promise stays unpaid (pending, broken after its grace)
        await _ok(
            await api.post(
                "/v1/payments",
                json={
                    "debtor_id": promise["debtor_id"],
                    "promise_id": promise["id"],
                    "amount": promise["amount"],
                    "paid_at": datetime.now(UTC).isoformat(),
                    "reference": f"demo-pay-{promise['id']}",
                },
            )
        )
        say(f"  paid promise {promise['id']} in full")
    if not ours:
        say("  no promises were made")

    say("\n== campaign stats")
    stats = await _ok(await api.get(f"/v1/campaigns/{campaign['id']}/stats"))
    for line in stats_table(stats):
        say(line)

    await asyncio.sleep(2)  # the last deliveries (promise.kept) are on their way
    say("\n== webhook events received")
    received = Counter(h.payload["type"] for h in receiver.received)
    for kind, count in sorted(received.items()):
        say(f"  {kind:<20} {count}")
    ok = campaign["status"] == "completed" and counts["failed"] == len(BAD_ROWS)
    return 0 if ok and received["campaign.completed"] == 1 else 1
