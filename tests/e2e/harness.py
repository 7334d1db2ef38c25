"""One full local run for the e2e package: every persona's call through all three services.

The deployment (PostgreSQL, Pub/Sub and GCS emulators, simulators, Client API, Call Scheduler,
Voice Orchestrator, each its own process) is started once for the package (tests/e2e/conftest.py)
and every persona's call is placed at once through the REST API. The modules of this package
check different things about the same run: behaviour per persona (test_personas), what the
services wrote to their logs (test_log_hygiene), prompt injection (test_prompt_injection).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
from cryptography.fernet import Fernet

from scripts.calls import (
    assign_persona,
    create_debtor,
    fictional_number,
    trigger_call,
    wait_terminal,
)
from scripts.deployment import API_KEY, TWILIO_TOKEN, LocalDeployment
from scripts.webhook_receiver import ReceivedWebhook, WebhookReceiver
from simulators.personas import load_personas

from .sdk import SdkRun, run_campaign_through_sdk

# Not 45000: a balance above 65535 cannot be mistaken for a port number in a log line.
BALANCE = 71_250
CURRENCY = "USD"
STAGE = "early"
TIMEZONE = "America/New_York"


@dataclass(frozen=True)
class Expect:
    status: str = "completed"
    outcome: str = "promise_to_pay"
    answered: bool = True


EXPECT: dict[str, Expect] = {
    "cooperative": Expect(),
    "negotiator": Expect(),
    "interrupter": Expect(),
    "wrong_person": Expect(outcome="wrong_party"),
    "disputes": Expect(outcome="disputed"),
    "callback_later": Expect(outcome="callback_scheduled"),
    "hostile": Expect(outcome="callback_scheduled"),
    "stop_calling": Expect(outcome="opted_out"),
    "silent": Expect(outcome="no_response"),
    "no_answer": Expect(status="no_answer", outcome="no_answer", answered=False),
    "busy": Expect(status="busy", outcome="no_answer", answered=False),
    # Prompt injection: every move it talks the model into is refused; repeated manipulation
    # attempts derail the call into a callback (tests/e2e/test_prompt_injection.py).
    "injector": Expect(outcome="callback_scheduled"),
    # A date of birth on file, answered wrongly twice: nothing disclosed, outcome unverified.
    "wrong_dob": Expect(outcome="unverified"),
}
PERSONAS = list(EXPECT)
PERSONA_FACTS = {name: p.facts for name, p in load_personas().items() if p.facts}

# A different, uncommon name per debtor, so a name in a log line points at a real leak.
NAMES: dict[str, str] = {
    "cooperative": "Jordan Rivera",
    "negotiator": "Priya Raghunathan",
    "interrupter": "Mateo Delacroix",
    "wrong_person": "Ingrid Vasquez",
    "disputes": "Tobias Okafor",
    "callback_later": "Keiko Brandt",
    "hostile": "Dmitri Lindqvist",
    "stop_calling": "Amara Whitfield",
    "silent": "Lucian Moreau",
    "no_answer": "Saoirse Kowalski",
    "busy": "Rafael Nakamura",
    "injector": "Yusuf Albrecht",
    "wrong_dob": "Elsbeth Marchetti",
}


@dataclass
class Run:
    persona: str
    debtor: dict[str, Any]  # as created through the API
    call: dict[str, Any]
    sim: dict[str, Any]
    hooks: list[ReceivedWebhook]
    transcript_object: dict[str, Any] | None
    wav: bytes | None
    debtor_after: dict[str, Any] = field(default_factory=dict)  # read back after the call
    events: list[dict[str, Any]] = field(default_factory=list)  # GET /v1/calls/{id}/events


@dataclass
class E2ERun:
    """Everything one run produced, and every secret the deployment was given."""

    out: Path
    runs: dict[str, Run]
    webhook_secret: str
    secrets: dict[str, str]  # name -> value the services (or simulators) were configured with
    openai_records: list[dict[str, Any]]
    sdk: SdkRun  # the campaign the generated client ran beside the persona calls

    def log_path(self, service: str) -> Path:
        return self.out / f"{service}.log"


def deployment_secrets() -> dict[str, str]:
    """Fresh vendor keys per run: each value is unique, so finding one in a log is a leak, and
    the simulators accept only these, so the services demonstrably used them."""
    return {
        "API_KEY": API_KEY,
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "OPENAI_API_KEY": f"sk-e2e-{secrets.token_hex(16)}",
        "DEEPGRAM_API_KEY": f"dg-e2e-{secrets.token_hex(16)}",
        "ELEVENLABS_API_KEY": f"el-e2e-{secrets.token_hex(16)}",
        "WEBHOOK_SECRET_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    }


def start_run() -> tuple[LocalDeployment, WebhookReceiver, dict[str, str]]:
    keys = deployment_secrets()
    out = Path(tempfile.mkdtemp(prefix="e2e-"))
    service_env = {k: v for k, v in keys.items() if k not in ("API_KEY", "TWILIO_AUTH_TOKEN")}
    deployment = LocalDeployment(
        out,
        # Tone voice: deterministic and cheap (CI has no espeak-ng); realistic-ish latencies.
        sim_args=[
            *("--speech", "tone", "--ms-per-char", "45"),
            *("--openai-api-key", keys["OPENAI_API_KEY"]),
            *("--deepgram-api-key", keys["DEEPGRAM_API_KEY"]),
            *("--elevenlabs-api-key", keys["ELEVENLABS_API_KEY"]),
        ],
        service_env=service_env,
    )
    receiver = WebhookReceiver()
    return deployment, receiver, keys


async def place_all(
    deployment: LocalDeployment, receiver: WebhookReceiver, keys: dict[str, str], sdk: ModuleType
) -> E2ERun:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    sim_url = deployment.sim_url
    assert sim_url is not None
    # The SDK's campaign runs at the same time as the persona calls (its own debtors and
    # numbers), so it costs the suite no wall time of its own.
    sdk_flow = asyncio.create_task(
        run_campaign_through_sdk(sdk, deployment.api_url, API_KEY, sim_url, PERSONA_FACTS)
    )
    async with (
        httpx.AsyncClient(base_url=deployment.api_url, headers=headers, timeout=30) as api,
        httpx.AsyncClient(base_url=sim_url, timeout=30) as sim,
        httpx.AsyncClient(timeout=30) as plain,
    ):
        endpoint = (await api.post("/v1/webhook-endpoints", json={"url": receiver.url})).json()
        receiver.secret = endpoint["secret"]
        ids: dict[str, str] = {}
        debtors: dict[str, dict[str, Any]] = {}
        for i, persona in enumerate(EXPECT):
            phone = fictional_number(900 + i)
            await assign_persona(sim, phone, persona)
            # The record holds what the persona would answer when asked to verify (its facts).
            debtors[persona] = await create_debtor(
                api,
                phone,
                stage=STAGE,
                amount_minor=BALANCE,
                name=NAMES[persona],
                facts=PERSONA_FACTS.get(persona),
            )
            ids[persona] = (await trigger_call(api, debtors[persona]["id"]))["id"]
        views = await wait_terminal(api, list(ids.values()), timeout_s=240)
        await _webhook_for_each(receiver, set(ids.values()), timeout_s=30)
        sdk_run = await sdk_flow  # before the vendor records are read: they include its calls
        await asyncio.sleep(1.0)  # a duplicate webhook, if any, would arrive now
        records = {
            vendor: (await sim.get(f"/_sim/{vendor}")).json()
            for vendor in ("deepgram", "elevenlabs", "openai")
        }
        runs = {}
        for persona, cid in ids.items():
            call = views[cid]
            sid = call.get("twilio_call_sid")
            snap = (await sim.get(f"/_sim/calls/{sid}?wait=10")).json() if sid else {}
            snap["_vendor_records"] = records
            hooks = [
                h
                for h in receiver.received
                if h.payload.get("data", {}).get("call", {}).get("id") == cid
            ]
            obj = wav = None
            if call.get("transcript_url"):
                obj = (await plain.get(call["transcript_url"])).json()
            if call.get("recording_url"):
                wav = (await plain.get(call["recording_url"])).content
            after = (await api.get(f"/v1/debtors/{debtors[persona]['id']}")).json()
            events = await call_events(api, cid)
            runs[persona] = Run(
                persona, debtors[persona], call, snap, hooks, obj, wav, after, events
            )
        return E2ERun(
            out=deployment.out,
            runs=runs,
            webhook_secret=endpoint["secret"],
            secrets=keys,
            openai_records=records["openai"],
            sdk=sdk_run,
        )


async def _webhook_for_each(
    receiver: WebhookReceiver, call_ids: set[str], timeout_s: float
) -> None:
    """Until each of these calls has its `call.completed` (other calls' webhooks arrive too)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        seen = {h.payload.get("data", {}).get("call", {}).get("id") for h in receiver.received}
        if call_ids <= seen:
            return
        await asyncio.sleep(0.1)


async def call_events(api: httpx.AsyncClient, call_id: str) -> list[dict[str, Any]]:
    """Every step event of the call, page by page."""
    events: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100}
    while True:
        resp = await api.get(f"/v1/calls/{call_id}/events", params=params)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        events.extend(body["data"])
        if body["next_cursor"] is None:
            return events
        params["cursor"] = body["next_cursor"]


def llm_records_of(run: E2ERun, call_id: str) -> list[dict[str, Any]]:
    """The OpenAI simulator's record of every request the orchestrator made for one call."""
    return [r for r in run.openai_records if r["params"].get("safety_identifier") == call_id]


SERVICES = ("client-api", "call-scheduler", "voice-orchestrator")


@dataclass(frozen=True)
class LogLine:
    service: str
    number: int  # 1-based line number in the file
    raw: str
    data: dict[str, Any] | None  # the JSON object, None if the line is not one


def read_log(run: E2ERun, service: str) -> list[LogLine]:
    lines = []
    text = run.log_path(service).read_text(encoding="utf-8", errors="replace")
    for i, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
        except json.JSONDecodeError:
            data = None
        lines.append(LogLine(service, i, raw, data if isinstance(data, dict) else None))
    return lines
