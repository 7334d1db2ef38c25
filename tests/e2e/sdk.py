"""A Python client generated from our published spec drives a campaign (issue 18 item 8).

`generate_sdk` runs openapi-python-client, a maintained generator, over
`specs/openapi/client-api.yaml`: bundled first, as the Client API serves it, because the
generator does not follow relative `$ref`s into `specs/schemas/`. Nothing in the generated code
is edited. `run_campaign_through_sdk` then uses only that client against the live deployment:
it imports debtors from a CSV into a new campaign, starts it, waits for it to complete, reports
a payment and reads the stats. If a client developer could not do this with the spec alone,
this fails.
"""

from __future__ import annotations

import asyncio
import csv
import importlib
import io
import json
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx

from scripts.calls import assign_persona, fictional_number
from services.client_api.openapi import served_spec

PACKAGE = "collections_sdk"
# Two debtors who pay: enough for a funnel, a promise and a kept payment, and both fit in one
# wave of the campaign's pacing, so the flow adds no wall time to the persona calls beside it.
PERSONAS = ("cooperative", "negotiator")
PACING = {"max_concurrent_calls": 2, "calls_per_minute": 30}


def generate_sdk(work: Path) -> ModuleType:
    """Generate the client into `work` and import it."""
    work.mkdir(parents=True, exist_ok=True)
    spec = work / "client-api.json"
    spec.write_text(json.dumps(served_spec()))
    config = work / "config.yaml"
    config.write_text(f"post_hooks: []\npackage_name_override: {PACKAGE}\n")
    out = work / "client"
    generator = Path(sys.executable).with_name("openapi-python-client")
    args = ["generate", "--path", str(spec), "--output-path", str(out), "--config", str(config)]
    done = subprocess.run(
        [str(generator), *args, "--overwrite"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    sys.path.insert(0, str(out))
    return importlib.import_module(PACKAGE)


@dataclass
class SdkRun:
    """What the generated client saw (its own model objects)."""

    imported: Any  # ImportJob
    campaign: Any  # Campaign, once completed
    items: list[Any]  # CampaignItem
    promise_paid: Any  # Promise after the payment
    payment: Any  # Payment
    stats: Any  # CampaignStats
    calls: list[Any]  # Call of each item


def _csv(tag: str, facts: dict[str, dict[str, str]]) -> bytes:
    out = io.StringIO()
    columns = ["external_id", "name", "phone", "timezone", "stage", "amount_owed_minor"]
    columns += ["currency", "due_date", "date_of_birth", "postal_code", "account_reference"]
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for i, persona in enumerate(PERSONAS):
        writer.writerow(
            dict.fromkeys(("date_of_birth", "postal_code", "account_reference"), "")
            | facts.get(persona, {})
            | {
                "external_id": f"sdk-{tag}-{i}",
                "name": f"Sdk Debtor {i}",
                "phone": fictional_number(950 + i),
                "timezone": "America/Chicago",
                "stage": "early",
                "amount_owed_minor": str(30_000 + 5_000 * i),
                "currency": "USD",
                "due_date": (date.today() - timedelta(days=20)).isoformat(),
            }
        )
    return out.getvalue().encode()


def _ok(response: Any, status: int) -> Any:
    assert response.status_code == status, (response.status_code, response.content[:500])
    return response.parsed


async def run_campaign_through_sdk(
    sdk: ModuleType, api_url: str, api_key: str, sim_url: str, facts: dict[str, dict[str, str]]
) -> SdkRun:
    models = importlib.import_module(f"{PACKAGE}.models")
    types = importlib.import_module(f"{PACKAGE}.types")
    from collections_sdk.api.calls import get_call  # type: ignore[import-not-found]
    from collections_sdk.api.campaigns import (  # type: ignore[import-not-found]
        create_campaign,
        get_campaign,
        get_campaign_stats,
        list_campaign_items,
        start_campaign,
    )
    from collections_sdk.api.imports import (  # type: ignore[import-not-found]
        create_debtor_import,
        get_debtor_import,
    )
    from collections_sdk.api.payments import create_payment  # type: ignore[import-not-found]
    from collections_sdk.api.promises import (  # type: ignore[import-not-found]
        get_promise,
        list_promises,
    )

    tag = uuid.uuid4().hex[:8]
    async with httpx.AsyncClient(base_url=sim_url, timeout=30) as sim:
        for i, persona in enumerate(PERSONAS):
            await assign_persona(sim, fictional_number(950 + i), persona)
    client = sdk.AuthenticatedClient(base_url=api_url, token=api_key, timeout=30.0)
    async with client:
        campaign = _ok(
            await create_campaign.asyncio_detailed(
                client=client,
                body=models.CampaignCreate.from_dict(
                    {
                        "name": f"SDK campaign {tag}",
                        "stage": "early",
                        "pacing": PACING,
                        "prompt_variants": {"default": 1, "plan_first": 1},
                    }
                ),
                idempotency_key=f"sdk-campaign-{tag}",
            ),
            201,
        )
        body = models.CreateDebtorImportFilesBody(
            file=types.File(
                payload=io.BytesIO(_csv(tag, facts)), file_name="debtors.csv", mime_type="text/csv"
            )
        )
        job = _ok(
            await create_debtor_import.asyncio_detailed(
                client=client, body=body, campaign_id=campaign.id
            ),
            202,
        )
        deadline = time.monotonic() + 60
        while job.status.value in ("queued", "processing") and time.monotonic() < deadline:
            await asyncio.sleep(0.25)
            job = _ok(await get_debtor_import.asyncio_detailed(job.id, client=client), 200)

        _ok(await start_campaign.asyncio_detailed(campaign.id, client=client), 200)
        deadline = time.monotonic() + 240
        while campaign.status.value not in ("completed", "cancelled"):
            assert time.monotonic() < deadline, campaign.to_dict()
            await asyncio.sleep(0.5)
            campaign = _ok(await get_campaign.asyncio_detailed(campaign.id, client=client), 200)

        items = _ok(
            await list_campaign_items.asyncio_detailed(campaign.id, client=client, limit=10), 200
        ).data
        calls = [
            _ok(await get_call.asyncio_detailed(item.call_id, client=client), 200) for item in items
        ]
        promises = []
        for item in items:
            page = _ok(
                await list_promises.asyncio_detailed(client=client, debtor_id=item.debtor_id), 200
            )
            promises += page.data
        assert promises, [c.outcome for c in calls]
        promise = promises[0]
        payment = _ok(
            await create_payment.asyncio_detailed(
                client=client,
                body=models.PaymentCreate.from_dict(
                    {
                        "debtor_id": str(promise.debtor_id),
                        "promise_id": str(promise.id),
                        "amount": promise.amount.to_dict(),
                        "paid_at": datetime.now(UTC).isoformat(),
                        "reference": f"sdk-pay-{tag}",
                    }
                ),
            ),
            201,
        )
        paid = _ok(await get_promise.asyncio_detailed(promise.id, client=client), 200)
        stats = _ok(await get_campaign_stats.asyncio_detailed(campaign.id, client=client), 200)
    return SdkRun(job, campaign, items, paid, payment, stats, calls)
