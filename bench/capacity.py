"""Capacity of one Voice Orchestrator process: concurrent calls stepped up.

    python -m bench.capacity [--steps 10,25,50,100,200] [--repeat 1] [--ramp-s 10]

At each step N calls run at once through the whole local deployment (realistic vendor
latencies, tone voice so the simulators stay cheap). They are triggered evenly over `--ramp-s`
seconds (10; a call lasts ~45 s), as calls placed one by one through the API would be, and a
step counts only if all N were live at the same time. With `--ramp-s 0` all N start in the
same second and, running the same script, take every turn within about a second of each other:
the worst case for one process, written to capacity-burst.json / .png instead.

Measured on the orchestrator process only: CPU per call (% of one core), memory per call (RSS
growth / N), event-loop lag (sampled from its /healthz during the step), and the orchestrator's
own overhead p99 per turn. Reports the highest step that keeps overhead p99 under 50 ms. With
`--repeat K` each step runs K times back to back and its figures pool all K runs' turns (one run
gives ~2 turns per call, so a p99 over 200 turns is set by its two worst; GC pauses make that
swing from run to run); each run's own p99 is listed too. Writes bench/results/capacity.json and
capacity.png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.harness import REALISTIC, RESULTS, BenchRun, percentiles, turn_figures, write_results

TARGET_OVERHEAD_P99_MS = 50.0


class Sampler:
    """Samples the orchestrator's RSS and loop lag in a thread while a step runs."""

    def __init__(self, pid: int, health_url: str) -> None:
        self.proc = psutil.Process(pid)
        self.health_url = health_url
        self.rss: list[int] = []
        self.lag_p99: list[float] = []
        self.live: list[int] = []
        self.health: dict[str, Any] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=2) as client:
            while not self._stop.is_set():
                self.rss.append(self.proc.memory_info().rss)
                try:
                    health = client.get(self.health_url).json()
                    self.health = health
                    self.lag_p99.append(float(health.get("loop_lag_p99_ms", 0.0)))
                    self.live.append(int(health.get("live_calls", 0)))
                except (httpx.HTTPError, ValueError):
                    pass
                self._stop.wait(0.5)

    def __enter__(self) -> Sampler:
        self.cpu0 = self.proc.cpu_times()
        self.t0 = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        cpu1 = self.proc.cpu_times()
        self.cpu_s = (cpu1.user - self.cpu0.user) + (cpu1.system - self.cpu0.system)
        self.wall_s = time.monotonic() - self.t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", default="10,25,50,100,200")
    ap.add_argument("--repeat", type=int, default=1, help="runs per step, turns pooled")
    ap.add_argument(
        "--ramp-s", type=float, default=10.0, help="trigger a step's calls over this many seconds"
    )
    ap.add_argument("--chart-only", action="store_true", help="redraw the chart from the JSON")
    args = ap.parse_args()
    name = "capacity" if args.ramp_s > 0 else "capacity-burst"
    if args.chart_only:
        steps_json = json.loads((RESULTS / f"{name}.json").read_text())["steps"]
        chart(steps_json, RESULTS / f"{name}.png", args.ramp_s)
        return
    steps = [int(s) for s in args.steps.split(",")]
    sim_args = [a for kv in REALISTIC.items() for a in kv] + ["--speech", "tone"]
    rows: list[dict[str, Any]] = []
    raw: dict[str, list[float]] = {}
    with BenchRun(Path(tempfile.mkdtemp(prefix="bench-capacity-")), sim_args) as bench:
        orch = bench.deployment.processes["voice-orchestrator"]
        assert orch.proc is not None
        offset = 0
        for n in steps:
            print(f"\n### {n} concurrent calls", flush=True)
            baseline = psutil.Process(orch.proc.pid).memory_info().rss
            results = []
            per_run_p99: list[float | int | None] = []
            with Sampler(orch.proc.pid, orch.url + "/healthz") as sampler:
                for _ in range(args.repeat):
                    batch = asyncio.run(
                        bench.calls(["cooperative"] * n, offset=offset, ramp_s=args.ramp_s)
                    )
                    offset += n
                    run_overhead = turn_figures(batch)["orchestrator_overhead_ms"]
                    per_run_p99.append(percentiles(run_overhead)["p99"])
                    results += batch
            figures = turn_figures(results)
            overhead = percentiles(figures["orchestrator_overhead_ms"])
            completed = sum(1 for r in results if r.call.get("outcome") == "promise_to_pay")
            busy_s = sampler.wall_s
            row = {
                "concurrent_calls": n,
                "runs": args.repeat,
                "ramp_s": args.ramp_s,
                "calls_promise_to_pay": completed,
                "peak_live_calls": max(sampler.live, default=0),
                "cpu_percent_of_one_core": round(sampler.cpu_s / busy_s * 100, 1),
                "cpu_percent_per_call": round(sampler.cpu_s / busy_s * 100 / n, 2),
                # Work done, not share of wall time: holds up when the host slows everything.
                "cpu_seconds_per_call": round(sampler.cpu_s / (n * args.repeat), 3),
                "rss_baseline_mb": round(baseline / 2**20, 1),
                "rss_peak_mb": round(max(sampler.rss, default=baseline) / 2**20, 1),
                "memory_per_call_kb": round(
                    (max(sampler.rss, default=baseline) - baseline) / n / 1024, 1
                ),
                "loop_lag_p99_ms_worst_window": max(sampler.lag_p99, default=0.0),
                # Since the process started (all steps so far): full collections stop the loop.
                "gc_full_collections": sampler.health.get("gc_full_collections"),
                "gc_full_pause_max_ms": sampler.health.get("gc_full_pause_max_ms"),
                "gc_young_pause_max_ms": sampler.health.get("gc_young_pause_max_ms"),
                "orchestrator_overhead_ms": overhead,
                "orchestrator_overhead_p99_ms_per_run": per_run_p99,
                "phone_voice_to_voice_ms": percentiles(figures["phone_voice_to_voice_ms"]),
            }
            raw[str(n)] = figures["orchestrator_overhead_ms"]
            rows.append(row)
            print(
                f"  cpu {row['cpu_percent_of_one_core']}% of a core "
                f"({row['cpu_percent_per_call']}%/call, {row['cpu_seconds_per_call']} CPU-s/call), "
                f"rss +{row['memory_per_call_kb']} KB/call, "
                f"loop lag p99 {row['loop_lag_p99_ms_worst_window']} ms, overhead p50/p95/p99 "
                f"{overhead['p50']}/{overhead['p95']}/{overhead['p99']} ms, "
                f"full GCs {row['gc_full_collections']} (max {row['gc_full_pause_max_ms']} ms), "
                f"per-run p99 {per_run_p99}, promises {completed}/{n * args.repeat}",
                flush=True,
            )
    ok = [
        r["concurrent_calls"]
        for r in rows
        if r["orchestrator_overhead_ms"]["p99"] is not None
        and r["orchestrator_overhead_ms"]["p99"] < TARGET_OVERHEAD_P99_MS
        and r["calls_promise_to_pay"] == r["concurrent_calls"] * r.get("runs", 1)
        and r["peak_live_calls"] >= r["concurrent_calls"]  # the ramp left them all live at once
    ]
    report = {
        "steps": rows,
        "highest_step_overhead_p99_under_50ms": max(ok, default=None),
        "ramp_s": args.ramp_s,
        "machine": {
            "cpus": psutil.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30),
        },
    }
    best = max(ok, default=None)
    print(
        "\nhighest step with overhead p99 < 50 ms, every call completed and all live at once: "
        f"{best}"
    )
    print(f"wrote {write_results(name, report)}")
    chart(rows, RESULTS / f"{name}.png", args.ramp_s)


def chart(steps: list[dict[str, Any]], path: Path, ramp_s: float) -> None:
    """Overhead percentiles and loop lag by load step (from the JSON, so it can be redrawn)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [s["concurrent_calls"] for s in steps]
    fig, ax = plt.subplots(figsize=(8, 4))
    for q, style in (("p50", "o-"), ("p95", "s-"), ("p99", "^-")):
        ax.plot(xs, [s["orchestrator_overhead_ms"][q] for s in steps], style, label=f"overhead {q}")
    ax.plot(xs, [s["loop_lag_p99_ms_worst_window"] for s in steps], "x--", label="loop lag p99")
    ax.axhline(TARGET_OVERHEAD_P99_MS, color="red", linestyle=":", label="50 ms")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.set_xlabel("concurrent calls in one orchestrator process")
    ax.set_ylabel("ms per turn")
    started = f"started over {ramp_s:g} s" if ramp_s > 0 else "all started at once"
    ax.set_title(f"Orchestrator overhead by load step (calls {started})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
