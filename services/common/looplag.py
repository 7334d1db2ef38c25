"""Event-loop lag: how late a periodic wake-up fires, and the garbage collector's pauses, its
usual cause under load. A blocked loop delays every live call's audio, so the orchestrator
reports both (health endpoint, benchmarks)."""

from __future__ import annotations

import asyncio
import gc
import time
from collections import deque
from typing import Any


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


class GcPauseMonitor:
    """Times every garbage collection (`gc.callbacks`); keeps the last `window` per generation.

    A full (generation 2) collection walks every live object and stops the loop meanwhile."""

    def __init__(self, window: int = 200) -> None:
        self.pauses: dict[int, deque[float]] = {g: deque(maxlen=window) for g in range(3)}
        self.counts = [0, 0, 0]
        self._started = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        generation = int(info["generation"])
        self.counts[generation] += 1
        self.pauses[generation].append((time.perf_counter() - self._started) * 1000)

    def close(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

    def snapshot(self) -> dict[str, float | int]:
        full = self.pauses[2]
        young = [*self.pauses[0], *self.pauses[1]]
        return {
            "gc_full_collections": self.counts[2],
            "gc_full_pause_max_ms": round(max(full, default=0.0), 2),
            "gc_young_pause_max_ms": round(max(young, default=0.0), 2),
        }
