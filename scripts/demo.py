"""The main job: a complete simulated collections call through all three services.

Starts the local stack (PostgreSQL, Pub/Sub and GCS emulators), the vendor simulators and the
three services as separate processes, registers a local webhook receiver, creates a debtor through
the REST API, triggers a call, shows its progress, and ends with the outcome, promise, transcript,
latency percentiles, cost, the signed webhook and the stereo recording.

    ./scripts/demo                                # cooperative payer, early stage
    ./scripts/demo --persona interrupter --stage late
    ./scripts/demo --persona voicemail            # machine detected, limited-content message
    ./scripts/demo --calls 5 --persona negotiator # five calls at once
    ./scripts/demo --persona busy                 # busy: the retry scheduled, then placed
    ./scripts/demo --persona callback_later       # the agreed callback placed (simulated time)
    ./scripts/demo --campaign 20                  # import 20 debtors, run a paced campaign
    ./scripts/demo --real-vendors --phone +1...   # real Twilio/Deepgram/OpenAI/ElevenLabs
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from scripts.calls import TERMINAL, assign_persona, create_debtor, fictional_number, trigger_call
from scripts.demo_campaign import WEBHOOK_EVENT_TYPES, campaign_env, run_campaign
from scripts.demo_followup import (
    DEMO_ENV,
    FOLLOW_UP_PERSONAS,
    describe_entry,
    fast_forward,
    wait_for_entry,
    wait_for_new_call,
)
from scripts.deployment import API_KEY, LocalDeployment
from scripts.localstack import ROOT, StackError
from scripts.webhook_receiver import WebhookReceiver
from simulators.personas import load_personas

# The personas the simulated phone network knows (simulators/personas/*.yaml).
PERSONAS = sorted(load_personas())
LATENCY_FIELDS = [
    ("voice_to_voice_ms", "voice-to-voice"),
    ("stt_final_ms", "STT final"),
    ("llm_first_token_ms", "LLM first token"),
    ("tts_first_byte_ms", "TTS first byte"),
    ("first_audio_out_ms", "first audio out"),
    ("orchestrator_overhead_ms", "our overhead"),
    ("barge_in_to_clear_ms", "barge-in → clear"),
]


def say(msg: str = "") -> None:
    print(msg, flush=True)


def percentile(values: list[int], p: float) -> int:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def money(m: dict[str, Any]) -> str:
    whole, cents = divmod(int(m["amount_minor"]), 100)
    return f"{whole}.{cents:02d} {m['currency']}"


def usd(micro: int | None) -> str:
    if micro is None:
        return "-"
    whole, frac = divmod(micro, 1_000_000)
    return f"${whole}.{frac:06d}"


@dataclass
class DemoCall:
    persona: str
    phone: str
    debtor_id: str = ""
    call_id: str = ""
    status: str = ""
    sid: str | None = None
    lines_seen: int = 0
    tts_seen: int = 0
    answered_by: str | None = None  # Twilio AMD's verdict, once the call view has it
    clears_seen: int = 0
    final: dict[str, Any] = field(default_factory=dict)


class Demo:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        self.out = Path(args.output_dir or ROOT / "demo-output" / stamp).resolve()
        self.out.mkdir(parents=True, exist_ok=True)
        self.follow_up = (
            args.persona in FOLLOW_UP_PERSONAS and args.calls == 1 and not args.campaign
        )
        env = dict(DEMO_ENV) if self.follow_up else {}
        if args.campaign:
            env |= {"SCHEDULER_TICK_SECONDS": "1"} | campaign_env(datetime.now().astimezone())
        self.deployment = LocalDeployment(
            self.out,
            real_vendors=args.real_vendors,
            sim_args=["--speech", args.voice],
            service_env=env,
        )
        self.receiver = WebhookReceiver()

    # -- start ------------------------------------------------------------------------------
    def start(self) -> None:
        say(f"output: {self.out}\n")
        self.deployment.start(say)
        self.receiver.start()
        say(f"  {'webhook receiver':<20} {self.receiver.url}")

    def stop(self) -> None:
        self.receiver.stop()
        self.deployment.stop()

    # -- the call ---------------------------------------------------------------------------
    async def run(self) -> int:
        self.sim_url = self.deployment.sim_url or ""
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with (
            httpx.AsyncClient(base_url=self.deployment.api_url, headers=headers, timeout=10) as api,
            httpx.AsyncClient(base_url=self.sim_url or "http://unused", timeout=10) as sim,
        ):
            say("\n== webhook endpoint")
            events = ["call.completed"]
            if self.args.campaign:
                events = WEBHOOK_EVENT_TYPES
            resp = await api.post(
                "/v1/webhook-endpoints",
                json={"url": self.receiver.url, "description": "demo receiver", "events": events},
            )
            resp.raise_for_status()
            endpoint = resp.json()
            self.receiver.secret = endpoint["secret"]
            say(f"  registered {endpoint['id']} → {self.receiver.url} (secret shown once)")
            if self.args.campaign:
                return await run_campaign(
                    api, sim if self.sim_url else None, self.receiver,
                    self.args.campaign, self.args.timeout, say,
                )  # fmt: skip

            calls = [self._plan(i) for i in range(self.args.calls)]
            say("\n== debtors and call triggers")
            for c in calls:
                if self.sim_url:
                    await assign_persona(sim, c.phone, c.persona)
                await self._create_and_trigger(api, c)
                say(f"  debtor {c.debtor_id}  persona {c.persona:<15} call {c.call_id}")

            say("\n== progress")
            started = time.monotonic()
            while any(c.status not in TERMINAL for c in calls):
                if time.monotonic() - started > self.args.timeout:
                    say(f"  timed out after {self.args.timeout}s")
                    break
                for c in calls:
                    await self._poll(api, sim, c, started)
                await asyncio.sleep(0.25)
            for c in calls:  # the final record, with transcript and links
                c.final = (await api.get(f"/v1/calls/{c.call_id}")).json()
            hooks = await self.receiver.wait_for(len(calls), timeout_s=20)
            for c in calls:
                await self._report(api, c, hooks)
            self._latency_summary(calls)
            ok = all(self._ok(c, hooks) for c in calls)
            if self.follow_up:
                ok = await self._follow_up(api, sim, calls[0]) and ok
            return 0 if ok else 1

    async def _follow_up(self, api: httpx.AsyncClient, sim: httpx.AsyncClient, c: DemoCall) -> bool:
        """What the Call Scheduler does after the first call: it schedules the retry (busy) or
        the agreed callback, and places it when due."""
        say("\n== the Call Scheduler's follow-up")
        entry = await wait_for_entry(api, c.debtor_id)
        if entry is None:
            say("  nothing was scheduled")
            return False
        wait = describe_entry(entry, say)
        if entry["reason"] == "callback" and wait > 5:
            agreed = (c.final.get("callback") or {}).get("scheduled_for")
            say(f"  the debtor agreed to {agreed}: {wait / 3600:.1f} h from now")
            say("  ** simulated time: the demo moves this entry to now; the scheduler re-checks")
            say("     holds and calling rules as at the agreed time, then places the call **")
            await fast_forward(self.deployment.stack.postgres.url, entry["id"])
        elif entry["reason"] == "retry":
            base = DEMO_ENV["RETRY_BASE_SECONDS"]
            say(f"  exponential backoff with jitter (demo setting RETRY_BASE_SECONDS={base})")
        placed = await wait_for_new_call(api, c.debtor_id, {c.call_id}, timeout_s=wait + 60)
        if placed is None:
            say("  the follow-up call was not placed")
            return False
        say(
            f"  placed: call {placed['id']}, attempt {placed['attempt']}, status {placed['status']}"
        )
        second = DemoCall(persona=c.persona, phone=c.phone, debtor_id=c.debtor_id)
        second.call_id, second.status = placed["id"], placed["status"]
        started = time.monotonic()
        while second.status not in TERMINAL and time.monotonic() - started < self.args.timeout:
            await self._poll(api, sim, second, started)
            await asyncio.sleep(0.25)
        second.final = (await api.get(f"/v1/calls/{second.call_id}")).json()
        hooks = await self.receiver.wait_for(2, timeout_s=20)
        await self._report(api, second, hooks)
        after = (await api.get(f"/v1/debtors/{c.debtor_id}")).json()
        nxt = after["next_scheduled_call"]
        attempts = after["call_attempts"]
        say(
            f"\n  debtor now: {attempts['count']} of {attempts['limit']} calls in "
            f"{attempts['period_days']:g} days; next scheduled: "
            + (f"{nxt['reason']} at {nxt['not_before']}" if nxt else "nothing")
        )
        return second.final.get("status") in TERMINAL

    def _plan(self, i: int) -> DemoCall:
        persona = self.args.persona
        if self.args.calls > 1 and self.args.persona == "mix":
            persona = PERSONAS[i % len(PERSONAS)]
        phone = self.args.phone or fictional_number(i)
        return DemoCall(persona=persona, phone=phone)

    async def _create_and_trigger(self, api: httpx.AsyncClient, c: DemoCall) -> None:
        # The record holds the facts the persona gives when asked to verify (date of birth...).
        persona = load_personas().get(c.persona)
        facts = persona.facts if persona is not None else None
        c.debtor_id = (await create_debtor(api, c.phone, self.args.stage, facts=facts))["id"]
        call = await trigger_call(api, c.debtor_id)
        c.call_id, c.status = call["id"], call["status"]

    async def _poll(
        self, api: httpx.AsyncClient, sim: httpx.AsyncClient, c: DemoCall, t0: float
    ) -> None:
        stamp = f"[{time.monotonic() - t0:6.1f}s]"
        tag = f"{c.persona[:12]:<12}" if self.args.calls > 1 else ""
        call = (await api.get(f"/v1/calls/{c.call_id}")).json()
        if call["status"] != c.status:
            c.status = call["status"]
            say(f"  {stamp} {tag} status → {c.status}")
        if call.get("answered_by") and call["answered_by"] != c.answered_by:
            c.answered_by = call["answered_by"]
            say(f"  {stamp} {tag} ** answering-machine detection: {c.answered_by} **")
        c.sid = call.get("twilio_call_sid") or c.sid
        if not (self.sim_url and c.sid):
            return
        r = await sim.get(f"/_sim/calls/{c.sid}")
        if r.status_code != 200 or not r.json().get("streams"):
            return
        stream = r.json()["streams"][-1]
        for line in stream["debtor_lines"][c.lines_seen :]:
            if line.get("end_ms") is None:
                break
            c.lines_seen += 1
            say(f"  {stamp} {tag} debtor: {line['text']}")
        tts = (await sim.get("/_sim/elevenlabs")).json()
        texts = [t for rec in tts if c.sid in json.dumps(rec) for t in rec.get("texts", [])]
        for text in texts[c.tts_seen :]:
            c.tts_seen += 1
            if text.strip():
                say(f"  {stamp} {tag} agent:  {text.strip()}")
        for _ in stream["clears"][c.clears_seen :]:
            c.clears_seen += 1
            say(f"  {stamp} {tag} ** debtor interrupted: agent audio cleared **")

    async def _report(self, api: httpx.AsyncClient, c: DemoCall, hooks: list[Any]) -> None:
        f = c.final
        say(f"\n== call {c.call_id} ({c.persona})")
        duration = f.get("duration_seconds")
        lasted = f"{duration}s" if duration is not None else "- (never answered)"
        say(f"  status {f['status']}, outcome {f.get('outcome')}, duration {lasted}")
        say(f"  answered by {f.get('answered_by') or 'not detected'} (Twilio AMD)")
        fact = f" ({f['verification_fact']})" if f.get("verification_fact") else ""
        say(f"  verification {f.get('verification') or 'none'}{fact}")
        say(f"  prompt version {f.get('prompt_version')}")
        if f.get("payment_promise"):
            p = f["payment_promise"]
            say(f"  promise: {money(p['amount'])} by {p['due_date']}")
        if f.get("callback"):
            say(f"  callback: {f['callback']['scheduled_for']} ({f['callback']['reason']})")
        say("  transcript:" if f.get("transcript") else "  transcript: none (nobody spoke)")
        for t in f.get("transcript", []):
            cut = "  [interrupted]" if t.get("interrupted") else ""
            say(f"    {t['speaker']:>6}: {t['text']}{cut}")
        if f.get("cost"):
            cost = f["cost"]
            say(
                f"  cost: total {usd(cost.get('total_micro_usd'))} = telephony "
                f"{usd(cost.get('telephony_micro_usd'))} + STT {usd(cost.get('stt_micro_usd'))} + "
                f"LLM {usd(cost.get('llm_micro_usd'))} + TTS {usd(cost.get('tts_micro_usd'))}"
            )
        mine = [
            h for h in hooks if h.payload.get("data", {}).get("call", {}).get("id") == c.call_id
        ]
        for h in mine:
            check = "VALID" if h.signature_valid else "INVALID"
            hook_id = h.headers.get("webhook-id")
            say(f"  webhook {h.payload.get('type')} received, id {hook_id}, signature {check}")
        if not mine:
            say("  webhook: not received")
        if f.get("recording_url"):
            wav = self.out / f"call-{c.call_id}.wav"
            r = await api.get(f["recording_url"]) if f["recording_url"].startswith("/") else None
            if r is None:
                async with httpx.AsyncClient(timeout=30) as plain:
                    r = await plain.get(f["recording_url"])
            if r.status_code == 200:
                wav.write_bytes(r.content)
                say(f"  recording: {f['recording_url'].split('?')[0]}")
                say(f"  local copy: {wav}  (stereo: debtor left, agent right)")
        if f.get("transcript_url"):
            say(f"  transcript object: {f['transcript_url'].split('?')[0]}")

    def _latency_summary(self, calls: list[DemoCall]) -> None:
        turns = [t for c in calls for t in c.final.get("latency", [])]
        if not turns:
            return
        say(f"\n== latency over {len(turns)} turns (ms)")
        say(f"  {'':<18}{'p50':>7}{'p95':>7}{'p99':>7}{'max':>7}{'n':>5}")
        for key, label in LATENCY_FIELDS:
            vals = [int(t[key]) for t in turns if t.get(key) is not None]
            if vals:
                say(
                    f"  {label:<18}{percentile(vals, 50):>7}{percentile(vals, 95):>7}"
                    f"{percentile(vals, 99):>7}{max(vals):>7}{len(vals):>5}"
                )

    def _ok(self, c: DemoCall, hooks: list[Any]) -> bool:
        got_hook = any(
            h.signature_valid and h.payload.get("data", {}).get("call", {}).get("id") == c.call_id
            for h in hooks
        )
        return c.final.get("status") in TERMINAL and c.final.get("outcome") is not None and got_hook


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="./scripts/demo", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--persona",
        default="cooperative",
        choices=[*PERSONAS, "mix"],
        help="debtor persona the simulated phone plays (mix: a different one per call)",
    )
    p.add_argument("--stage", default="early", choices=["pre_delinquency", "early", "late"])
    p.add_argument("--calls", type=int, default=1, help="calls placed at once")
    p.add_argument(
        "--campaign",
        type=int,
        metavar="N",
        default=0,
        help="import N debtors from a generated CSV into a paced campaign and run it",
    )
    p.add_argument(
        "--real-vendors",
        action="store_true",
        help="use real Twilio, Deepgram, OpenAI and ElevenLabs (keys from env)",
    )
    p.add_argument("--phone", help="number to call (with --real-vendors)")
    p.add_argument(
        "--voice",
        default="auto",
        choices=["auto", "espeak", "tone"],
        help="simulated debtor voice: espeak-ng speech when installed (auto), or a tone",
    )
    p.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the calls")
    p.add_argument("--output-dir", help="where logs, the WAV copy and the stack data go")
    p.add_argument("--keep", action="store_true", help="leave everything running until Ctrl-C")
    args = p.parse_args(argv)
    if args.real_vendors and not args.phone:
        p.error("--real-vendors needs --phone")
    if args.calls < 1:
        p.error("--calls must be at least 1")
    if args.campaign < 0 or args.campaign > 500:
        p.error("--campaign takes 1..500 debtors")
    if args.campaign and args.real_vendors:
        p.error("--campaign runs on the simulated phone network only")
    if args.campaign and args.timeout == 180.0:
        args.timeout = 60.0 * args.campaign
    return args  # fmt: skip


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM stops everything we started, like Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    demo = Demo(args)
    code = 1
    try:
        demo.start()
        code = asyncio.run(demo.run())
        if args.keep:
            say("\neverything is still running; Ctrl-C stops it")
            while True:
                time.sleep(3600)
    except StackError as exc:
        say(f"\nerror: {exc}")
    except KeyboardInterrupt:
        pass
    except httpx.HTTPStatusError as exc:
        say(f"\nerror: {exc.request.method} {exc.request.url} → {exc.response.status_code}")
        say(exc.response.text)
    finally:
        say("\nstopping ...")
        demo.stop()
        shutil.rmtree(demo.deployment.out / "stack", ignore_errors=True)
        say(f"logs: {demo.out}")
    return code


if __name__ == "__main__":
    sys.exit(main())
