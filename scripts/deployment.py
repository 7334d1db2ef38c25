"""Everything a call needs, on one machine: the local stack, the simulators and the three
services, each in its own process. Used by the demo, the benchmarks and the e2e tests."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from scripts.localstack import LocalStack, StackError, free_port
from scripts.processes import ServiceProcess

API_KEY = "local-demo-api-key"
TWILIO_TOKEN = "local-sim-twilio-token"
REAL_VENDOR_VARS = [
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_FROM_NUMBER",
    "ORCHESTRATOR_PUBLIC_URL",
    "DEEPGRAM_API_KEY",
    "OPENAI_API_KEY",
    "ELEVENLABS_API_KEY",
]
SERVICES = [
    ("client-api", "services.client_api", "CLIENT_API_PORT"),
    ("call-scheduler", "services.call_scheduler", "CALL_SCHEDULER_PORT"),
    ("voice-orchestrator", "services.voice_orchestrator", "VOICE_ORCHESTRATOR_PORT"),
]


@dataclass
class LocalDeployment:
    out: Path
    real_vendors: bool = False
    # Only the model is real (OPENAI_API_KEY from env, api.openai.com): the phone, STT and TTS
    # stay simulated, so scripted personas can still play the debtor (bench.conversation).
    real_llm: bool = False
    sim_args: list[str] = field(default_factory=list)
    service_env: dict[str, str] = field(default_factory=dict)
    stack: LocalStack = field(init=False)
    processes: dict[str, ServiceProcess] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self.stack = LocalStack(self.out / "stack")

    @property
    def api_url(self) -> str:
        return self.processes["client-api"].url

    @property
    def sim_url(self) -> str | None:
        sims = self.processes.get("simulators")
        return sims.url if sims else None

    def start(self, say: Callable[[str], None] = lambda _: None) -> None:
        say("== local stack")
        self.stack.start(progress=True)
        env = {**self.stack.env(), "API_KEY": API_KEY, "LOG_LEVEL": "INFO", **self.service_env}
        if self.real_vendors:
            missing = [v for v in REAL_VENDOR_VARS if not os.environ.get(v)]
            if missing:
                raise StackError(f"real vendors need these variables set: {', '.join(missing)}")
        else:
            if self.real_llm and not os.environ.get("OPENAI_API_KEY"):
                raise StackError("a real model needs OPENAI_API_KEY set")
            ports = {v: free_port() for v in ("twilio", "deepgram", "openai", "elevenlabs")}
            self.processes["simulators"] = ServiceProcess(
                "simulators",
                "simulators",
                env={"SIM_TWILIO_AUTH_TOKEN": TWILIO_TOKEN},
                port=ports["twilio"],
                log_path=self.out / "simulators.log",
                health_path="/_sim/health",
                args=[
                    *(a for v, p in ports.items() for a in (f"--{v}-port", str(p))),
                    *self.sim_args,
                ],
            )
            env.update(
                {
                    "TWILIO_API_BASE_URL": f"http://127.0.0.1:{ports['twilio']}",
                    "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
                    "DEEPGRAM_WS_URL": f"ws://127.0.0.1:{ports['deepgram']}",
                    "OPENAI_BASE_URL": f"http://127.0.0.1:{ports['openai']}/v1",
                    "ELEVENLABS_BASE_URL": f"http://127.0.0.1:{ports['elevenlabs']}",
                    "ELEVENLABS_WS_URL": f"ws://127.0.0.1:{ports['elevenlabs']}",
                }
            )
            if self.real_llm:
                env["OPENAI_BASE_URL"] = os.environ.get(
                    "OPENAI_BASE_URL", "https://api.openai.com/v1"
                )
                env["OPENAI_API_KEY"] = os.environ["OPENAI_API_KEY"]
        ports = {name: free_port() for name, _, _ in SERVICES}
        if not self.real_vendors:
            env["ORCHESTRATOR_PUBLIC_URL"] = f"http://127.0.0.1:{ports['voice-orchestrator']}"
        for name, module, port_var in SERVICES:
            self.processes[name] = ServiceProcess(
                name,
                module,
                env={**env, port_var: str(ports[name])},
                port=ports[name],
                log_path=self.out / f"{name}.log",
            )
        say("== services")
        for proc in self.processes.values():
            proc.start()
        for proc in self.processes.values():
            health = proc.wait_healthy(timeout=60)
            say(f"  {proc.name:<20} {proc.url:<28} {json.dumps(health)}")

    def stop(self) -> None:
        for proc in reversed(list(self.processes.values())):
            proc.stop()
        self.stack.stop()
