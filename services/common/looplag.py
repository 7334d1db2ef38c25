"""Event-loop lag: how late a periodic wake-up fires. A blocked loop delays every live call's
audio, so the orchestrator reports this figure (health endpoint, benchmarks)."""

from __future__ import annotations

import asyncio
from collections import deque


class LoopLagMonitor:
    def __init__(self, interval_s: float = 0.05, window: int = 1200) -> None:
        self.interval_s = interval_s
        self.samples: deque[float] = deque(maxlen=window)  # lag in ms, most recent last

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(self.interval_s)
            self.samples.append(max(0.0, (loop.time() - start - self.interval_s) * 1000))

    def snapshot(self) -> dict[str, float]:
        xs = sorted(self.samples)
        if not xs:
            return {"loop_lag_p50_ms": 0.0, "loop_lag_p99_ms": 0.0, "loop_lag_max_ms": 0.0}
        return {
            "loop_lag_p50_ms": round(xs[len(xs) // 2], 2),
            "loop_lag_p99_ms": round(xs[min(len(xs) - 1, int(len(xs) * 0.99))], 2),
            "loop_lag_max_ms": round(xs[-1], 2),
        }
