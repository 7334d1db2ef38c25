"""Voice-to-voice latency and the orchestrator's own overhead, over N simulated calls.

    python -m bench.latency [--calls 20] [--profiles realistic,zero,jittery]

Writes bench/results/latency.json and bench/results/latency.png. Not part of the test command.
Per profile: `stats` (every turn, as before); `replies` (reply turns, greeting excluded);
`by_kind.<greeting|fixed_line|tool_turn|plain_turn>` with phone and orchestrator voice-to-voice
and the per-turn breakdown (end-of-speech wait, STT final, first token of each model request,
first sentence, TTS first byte); `llm_requests_before_audio` ({requests: turns});
`early_generation` (starts, hits, discards). Kinds come from the `turn_kind` the orchestrator
stores with each turn (read from the database); turns without it are `unclassified`.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from bench.harness import (
    KINDS,
    PROFILES,
    RESULTS,
    BenchRun,
    kind_report,
    percentiles,
    print_table,
    run,
    turn_figures,
    write_results,
)

# Questioner and haggler first: with 20 calls they get 4 calls each, the others 3, and plain
# turns (the model answers without a tool call) are ~44 % of reply turns.
PERSONAS = ["questioner", "haggler", "cooperative", "negotiator", "callback_later", "disputes"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--profiles", default="realistic,zero,jittery")
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
        kinds = kind_report(results)
        raw_by_kind = kinds.pop("raw_by_kind")
        report["profiles"][profile] = {
            "vendor_latencies": PROFILES[profile],
            "stats": stats,
            "outcomes": outcomes,
            **kinds,
            "raw": {k: v for k, v in figures.items() if v},
            "raw_by_kind": raw_by_kind,
        }
        print_table(f"profile {profile} (ms per turn)", stats)
        print_table(f"profile {profile}: reply turns", kinds["replies"])
        for kind, data in kinds["by_kind"].items():
            rows = {k: v for k, v in data.items() if isinstance(v, dict) and "n" in v}
            print_table(f"profile {profile}: {kind} ({data['turns']} turns)", rows)
        print(f"  model requests before first audio: {kinds['llm_requests_before_audio']}")
        print(f"  model asked again after a tool call: {kinds['asked_again']}")
        print(f"  early generation: {kinds['early_generation']}")
        print(f"  replies whose first sound was made ahead: {kinds['premade_first_audio']}")
        print(f"  outcomes: {outcomes}")
    path = write_results("latency", report)
    chart(report, RESULTS / "latency.png")
    print(f"\nwrote {path} and {RESULTS / 'latency.png'}")


def chart(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    profiles = report["profiles"]
    kinds = [k for k in (*KINDS, "unclassified") if any(
        data.get("raw_by_kind", {}).get(k) for data in profiles.values()
    )]  # fmt: skip
    fig, axes = plt.subplots(1, 2 + len(kinds), figsize=(5.5 * (2 + len(kinds)), 4))
    for profile, data in profiles.items():
        raw = data["raw"]
        axes[0].hist(raw.get("phone_voice_to_voice_ms", []), bins=30, alpha=0.6, label=profile)
        axes[1].hist(raw.get("orchestrator_overhead_ms", []), bins=30, alpha=0.6, label=profile)
        for ax, kind in zip(axes[2:], kinds, strict=True):
            values = data.get("raw_by_kind", {}).get(kind, [])
            if values:
                ax.hist(values, bins=20, alpha=0.6, label=profile)
    axes[0].set_title("voice-to-voice as heard on the phone (ms)")
    axes[1].set_title("orchestrator's own overhead (ms)")
    for ax, kind in zip(axes[2:], kinds, strict=True):
        ax.set_title(f"{kind}: phone voice-to-voice (ms)")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
        ax.set_ylabel("turns")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
