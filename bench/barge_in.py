"""Barge-in: debtors who cut the agent off at random points.

    python -m bench.barge_in [--calls 20] [--seed 7]

Per interruption, from the phone's side: debtor speech onset → `clear` received, and → the last
agent audio frame played; plus any agent audio that overlapped debtor speech beyond the reaction
time. Writes bench/results/barge_in.json. Targets: onset→clear p95 < 150 ms; overlap zero beyond
the reaction time.
"""

from __future__ import annotations

import argparse
import random
import tempfile
from pathlib import Path
from typing import Any

import httpx

from bench.harness import (
    REALISTIC,
    BenchRun,
    CallResult,
    percentiles,
    print_table,
    run,
    write_results,
)
from scripts.calls import (
    assign_persona,
    create_debtor,
    fictional_number,
    trigger_call,
    wait_terminal,
)
from scripts.deployment import API_KEY


def persona(i: int, rng: random.Random) -> dict[str, Any]:
    """Confirms identity, then twice cuts the agent off 0.3–2.5 s into its audio."""
    cut1, cut2 = rng.randint(300, 2500), rng.randint(300, 2500)
    return {
        "name": f"barge_{i}",
        "description": "random barge-in",
        "ring_ms": 500,
        "hangup": "after_agent_done",
        "hangup_delay_ms": 600,
        "max_call_s": 90,
        "lines": [
            {"text": "Hello?", "after": "answer", "delay_ms": 300},
            {"text": "Yes, this is me. What is it about?", "after": "agent_start",
             "delay_ms": cut1},
            {"text": "Okay. I can pay the full amount tomorrow.", "after": "agent_start",
             "delay_ms": cut2},
        ],
    }  # fmt: skip


def interruptions(result: CallResult) -> list[dict[str, float]]:
    streams = result.sim.get("streams") or []
    if not streams:
        return []
    s = streams[-1]
    segments = s.get("agent_audio", [])
    out = []
    for line in s.get("debtor_lines", []):
        onset = line.get("start_ms")
        if onset is None:
            continue
        # Was agent audio playing when the debtor started?
        if not any(seg["start_ms"] <= onset < seg["end_ms"] for seg in segments):
            continue
        clear = next((c["at_ms"] for c in s.get("clears", []) if c["at_ms"] >= onset), None)
        last_frame = max(
            (min(seg["end_ms"], clear or seg["end_ms"]) for seg in segments
             if seg["start_ms"] <= onset < seg["end_ms"]),
            default=onset,
        )  # fmt: skip
        out.append(
            {
                "onset_to_clear_ms": (clear - onset) if clear is not None else float("nan"),
                "onset_to_last_agent_frame_ms": max(0, last_frame - onset),
            }
        )
    return out


async def calls(bench: BenchRun, n: int, seed: int) -> list[CallResult]:
    rng = random.Random(seed)
    sim_url = bench.deployment.sim_url
    assert sim_url is not None
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with (
        httpx.AsyncClient(base_url=bench.deployment.api_url, headers=headers, timeout=30) as api,
        httpx.AsyncClient(base_url=sim_url, timeout=30) as sim,
    ):
        ids = []
        for i in range(n):
            phone = fictional_number(500 + i)
            await assign_persona(sim, phone, persona(i, rng))  # type: ignore[arg-type]
            debtor = await create_debtor(api, phone)
            ids.append((await trigger_call(api, debtor["id"]))["id"])
        views = await wait_terminal(api, ids, 240)
        results = []
        for cid in ids:
            sid = views[cid].get("twilio_call_sid")
            snap = (await sim.get(f"/_sim/calls/{sid}?wait=5")).json() if sid else {}
            results.append(CallResult("barge", views[cid], snap))
        return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    sim_args = [a for kv in REALISTIC.items() for a in kv]
    with BenchRun(Path(tempfile.mkdtemp(prefix="bench-barge-")), sim_args) as bench:
        results = run(calls(bench, args.calls, args.seed))
    events = [e for r in results for e in interruptions(r)]
    missed = sum(1 for e in events if e["onset_to_clear_ms"] != e["onset_to_clear_ms"])
    overlap_total = sum(float(r.sim.get("streams", [{}])[-1].get("overlap_ms", 0)) for r in results)
    orchestrator = [
        float(t["barge_in_to_clear_ms"])
        for r in results
        for t in r.call.get("latency", [])
        if t.get("barge_in_to_clear_ms") is not None
    ]
    stats = {
        "onset_to_clear_ms": percentiles(
            [
                e["onset_to_clear_ms"]
                for e in events
                if e["onset_to_clear_ms"] == e["onset_to_clear_ms"]
            ]
        ),
        "onset_to_last_agent_frame_ms": percentiles(
            [e["onset_to_last_agent_frame_ms"] for e in events]
        ),
        "orchestrator_barge_in_to_clear_ms": percentiles(orchestrator),
    }
    print_table("barge-in (ms)", stats)
    beyond = [e["onset_to_last_agent_frame_ms"] - 150 for e in events]
    report = {
        "calls": args.calls,
        "interruptions": len(events),
        "interruptions_without_clear": missed,
        "overlap_ms_total_as_heard": round(overlap_total, 1),
        "overlap_beyond_150ms_reaction": round(sum(x for x in beyond if x > 0), 1),
        "stats": stats,
        "outcomes": [r.call.get("outcome") for r in results],
    }
    print(
        f"  interruptions {len(events)}, without clear {missed}, overlap heard "
        f"{report['overlap_ms_total_as_heard']} ms in total"
    )
    print(f"wrote {write_results('barge_in', report)}")


if __name__ == "__main__":
    main()
