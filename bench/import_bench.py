"""Bulk debtor import bench: 100,000 generated rows through the real path, rows/s and peak memory.

Starts its own local stack (PostgreSQL, Pub/Sub and GCS emulators) and the Client API as its own
process with the production import settings (batches of 1,000 rows, 2 at a time), then uploads
one generated CSV file (about 0.5 % bad rows, a few repeated external_ids) streamed from disk,
and polls the import until it is completed. Reports the upload time (body sent until the 202),
the processing time (202 until `completed`), rows per second over both, and the Client API
process's resident memory: its peak (VmHWM) over the whole run, its size before the upload,
and the highest sample taken every 50 ms during the run. Writes bench/results/import.json.

    .venv/bin/python -m bench.import_bench [--rows 100000]
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import random
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from scripts.localstack import LocalStack
from scripts.processes import ServiceProcess

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
API_KEY = "bench-import-api-key-0123"
COLUMNS = [
    "external_id",
    "name",
    "phone",
    "timezone",
    "stage",
    "amount_owed_minor",
    "currency",
    "due_date",
    "account_reference",
    "postal_code",
    "metadata.portfolio",
]
ZONES = ["America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles", ""]


def write_file(path: Path, rows: int, seed: int = 18) -> dict[str, int]:
    """The CSV file: valid rows with a few bad ones and repeated references mixed in."""
    rng = random.Random(seed)
    bad = repeated = 0
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\r\n")
        writer.writerow(COLUMNS)
        for i in range(1, rows + 1):
            ext = f"bench-{i:06d}"
            phone = f"+1415555{rng.randrange(10000):04d}"
            amount = str(rng.randrange(1000, 500_000))
            if i % 200 == 0:  # 0.5 %: a phone number that is not one
                phone, bad = "555-01", bad + 1
            elif i % 997 == 0:  # a reference seen earlier in the file
                ext, repeated = f"bench-{i - 500:06d}", repeated + 1
            writer.writerow(
                [
                    ext,
                    f"Debtor {i}, {rng.choice(['Smith', 'García', 'O’Neil', 'Nguyen'])}",
                    phone,
                    rng.choice(ZONES),
                    rng.choice(["pre_delinquency", "early", "late"]),
                    amount,
                    "USD",
                    f"2026-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
                    f"ACC-{rng.randrange(10**8):08d}",
                    f"{rng.randrange(10000, 99999)}",
                    rng.choice(["spring-2026", "autumn-2026"]),
                ]
            )
    return {"bad": bad, "repeated": repeated}


def rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


class Sampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.max_kib = 0
        self.running = True

    def run(self) -> None:
        while self.running:
            self.max_kib = max(self.max_kib, rss_kib(self.pid, "VmRSS"))
            time.sleep(0.05)


def file_chunks(path: Path, size: int = 64 * 1024) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(size):
            yield chunk


def run(rows: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="import-bench-"))
    stack = LocalStack(work / "stack")
    stack.start(progress=True)
    server = ServiceProcess(
        name="client-api",
        module="services.client_api",
        env={**stack.env(), "API_KEY": API_KEY, "LOG_LEVEL": "WARNING"},
        log_path=work / "client-api.log",
    )
    server.env["CLIENT_API_PORT"] = str(server.port)
    try:
        data = work / "debtors.csv"
        mix = write_file(data, rows)
        size = data.stat().st_size
        print(f"file: {rows} rows, {size / 1e6:.1f} MB; starting the Client API", flush=True)
        server.start()
        server.wait_healthy(timeout=60)
        assert server.proc is not None
        pid = server.proc.pid
        time.sleep(1.0)
        before_kib = rss_kib(pid, "VmRSS")
        sampler = Sampler(pid)
        sampler.start()
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=600
        ) as client:
            t0 = time.monotonic()
            resp = client.post(
                "/v1/debtor-imports",
                content=file_chunks(data),
                headers={"Content-Type": "text/csv"},
            )
            t_upload = time.monotonic() - t0
            resp.raise_for_status()
            job = resp.json()
            while job["status"] not in ("completed", "failed"):
                time.sleep(0.25)
                job = client.get(f"/v1/debtor-imports/{job['id']}").json()
            t_total = time.monotonic() - t0
        sampler.running = False
        sampler.join()
        peak_kib = rss_kib(pid, "VmHWM")
        counts = job["counts"]
        result = {
            "rows": rows,
            "file_bytes": size,
            "mix": mix,
            "status": job["status"],
            "counts": counts,
            "batch_rows": 1000,
            "import_concurrency": 2,
            "upload_s": round(t_upload, 2),
            "processing_s": round(t_total - t_upload, 2),
            "total_s": round(t_total, 2),
            "rows_per_s": round(rows / t_total),
            "processing_rows_per_s": round(rows / (t_total - t_upload)),
            "upload_mb_per_s": round(size / 1e6 / t_upload, 1),
            "client_api_rss_before_upload_mib": round(before_kib / 1024, 1),
            "client_api_rss_max_sampled_mib": round(sampler.max_kib / 1024, 1),
            "client_api_peak_rss_mib": round(peak_kib / 1024, 1),
            "client_api_peak_rss_growth_mib": round((peak_kib - before_kib) / 1024, 1),
            "machine": {"cpus": _cpus(), "python": platform.python_version()},
            "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        return result
    finally:
        server.stop()
        stack.stop()


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--out", type=Path, default=RESULTS / "import.json")
    args = ap.parse_args()
    result = run(args.rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    c = result["counts"]
    print(
        f"{result['rows']} rows ({result['file_bytes'] / 1e6:.1f} MB): {result['status']}, "
        f"created {c['created']}, duplicates {c['duplicates']}, failed {c['failed']}\n"
        f"upload {result['upload_s']} s ({result['upload_mb_per_s']} MB/s), processing "
        f"{result['processing_s']} s; {result['rows_per_s']} rows/s overall "
        f"({result['processing_rows_per_s']} rows/s processing)\n"
        f"Client API RSS: {result['client_api_rss_before_upload_mib']} MiB before, peak "
        f"{result['client_api_peak_rss_mib']} MiB (+{result['client_api_peak_rss_growth_mib']} "
        f"MiB); written to {args.out}"
    )


if __name__ == "__main__":
    main()
