"""Child processes for the three services and the simulators, as the demo and e2e tests run them.

Each service is its own OS process (as in production), started with the local stack's
environment, checked through its `/healthz`, and stoppable (or killable, for crash tests).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from scripts.localstack import ROOT, StackError, free_port


@dataclass
class ServiceProcess:
    name: str
    module: str
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    log_path: Path | None = None
    args: list[str] = field(default_factory=list)
    health_path: str = "/healthz"
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module, *self.args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_healthy(self, timeout: float = 30.0) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise StackError(
                    f"{self.name} exited with {self.proc.returncode}; see {self.log_path}"
                )
            try:
                resp = httpx.get(self.url + self.health_path, timeout=1.0)
                if resp.status_code == 200:
                    body: dict[str, object] = resp.json()
                    return body
                last = resp.text
            except httpx.HTTPError as exc:
                last = exc
            time.sleep(0.1)
        raise StackError(f"{self.name} not healthy after {timeout:.0f}s: {last!r}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)
