"""Voice-to-voice latency and the orchestrator's own overhead, over N simulated calls.

    python -m bench.latency [--calls 20] [--profiles realistic,zero]

Writes bench/results/latency.json and bench/results/latency.png. Not part of the test command.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from bench.harness import (
    PROFILES,
    RESULTS,
    BenchRun,
    percentiles,
    print_table,
    run,
    turn_figures,
    write_results,
)

PERSONAS = ["cooperative", "negotiator", "callback_later", "disputes"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--profiles", default="realistic,zero")
    args = ap.parse_args()
    report: dict[str, Any] = {"calls_per_profile": args.calls, "profiles": {}}
    for profile in args.profiles.split(","):
        sim_args = [a for kv in PROFILES[profile].items() for a in kv]
        print(f"\n### profile {profile}: {' '.join(sim_args)}", flush=True)
        with BenchRun(Path(tempfile.mkdtemp(prefix=f"bench-{profile}-")), sim_args) as bench:
            personas = [PERSONAS[i % len(PERSONAS)] for i in range(args.calls)]
            results = run(bench.calls(personas))
        figures = turn_figures(results)
        stats = {k: percentiles(v) for k, v in figures.items()}
        outcomes: dict[str, int] = {}
        for r in results:
            outcomes[str(r.call.get("outcome"))] = outcomes.get(str(r.call.get("outcome")), 0) + 1
        report["profiles"][profile] = {
            "vendor_latencies": PROFILES[profile],
            "stats": stats,
            "outcomes": outcomes,
            "raw": {k: v for k, v in figures.items() if v},
        }
        print_table(f"profile {profile} (ms per turn)", stats)
        print(f"  outcomes: {outcomes}")
    path = write_results("latency", report)
    chart(report, RESULTS / "latency.png")
    print(f"\nwrote {path} and {RESULTS / 'latency.png'}")


def chart(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    profiles = report["profiles"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for profile, data in profiles.items():
        raw = data["raw"]
        axes[0].hist(raw.get("phone_voice_to_voice_ms", []), bins=30, alpha=0.6, label=profile)
        axes[1].hist(raw.get("orchestrator_overhead_ms", []), bins=30, alpha=0.6, label=profile)
    axes[0].set_title("voice-to-voice as heard on the phone (ms)")
    axes[1].set_title("orchestrator's own overhead (ms)")
    for ax in axes:
        ax.legend()
        ax.set_ylabel("turns")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
