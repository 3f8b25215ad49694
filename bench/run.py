"""Benchmarks (``make bench``): never part of the test suite.

Generator: a 100,000-account tenant (≈1M subscription versions), wall time and peak RSS.
Extract: the same tenant served by the sandbox, local side in PostgreSQL: full extract wall
time, records/s, API calls, peak RSS; incremental after 0.1% changes; local export rows/s.
Reconcile: every object and rule on the full snapshot (target < 30 s, < 4 GB on 2 cores).
Repair: plan and apply of the 1% drift's auto findings on PostgreSQL (ops/s, plan bytes).
Backfill: the full snapshot into an empty PostgreSQL database (``backfill_bench.py``; target
< 5 min, < 2 GB RSS on 2 cores), with and without guards when they exist. At a small size
alone: ``python bench/run.py --accounts 300 --only backfill``.
Validate: contracts (target < 10% of the reconcile time) and GX business rules, same snapshot.
Report: size and generation time for 100,000 findings, first render in headless Chromium.
Diff: one 1M-row, 40-column table pair vs a bare DuckDB hash compare and datacompy (polars).
Callouts: receiver throughput and answer time under a keep-alive load client, and callout
received → local PostgreSQL row consistent, workers in the receiver's process and apart
(``callouts_bench.py``; alone: ``--only callouts`` or ``make bench-callouts``).
Figures in issue notes come from here, with the machine's size.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def machine() -> str:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores, {mem:.0f} GiB RAM, Python {sys.version.split()[0]}"


def bench_generate(accounts: int, fmt: str, out_root: Path) -> dict:
    out = out_root / f"tenant-{accounts}"
    cmd = [sys.executable, "-m", "jobs.cli", "-q", "sandbox", "generate", "--accounts",
           str(accounts), "--seed", "7", "--drift", "0.01", "--format", fmt, "--out", str(out)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t0
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    meta = json.loads((out / "tenant.json").read_text())
    rows = sum(meta["counts"].values())
    return {
        "bench": "sandbox generate", "accounts": accounts, "format": fmt,
        "wall_s": round(wall, 1), "peak_rss_mib": round(peak_kib / 1024),
        "zuora_rows": rows, "rows_per_s": round(rows / wall),
        "subscription_versions": meta["counts"]["Subscription"],
        "charges": meta["counts"]["RatePlanCharge"], "tiers": meta["counts"]["RatePlanChargeTier"],
        "labels": sum(v for k, v in meta["labels"].items() if k != "D26"),
        "dataset_mib": round(sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 2**20),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--accounts", type=int, default=100_000)
    p.add_argument("--format", default="jsonl", choices=("jsonl", "parquet"))
    p.add_argument("--keep", help="directory to keep the generated tenant in")
    p.add_argument("--skip-extract", action="store_true", help="generator benchmark only")
    p.add_argument("--skip-diff", action="store_true", help="no 1M-row diff benchmark")
    p.add_argument("--skip-callouts", action="store_true", help="no callouts benchmark")
    p.add_argument("--only", choices=("callouts", "backfill"),
                   help="run just this benchmark (backfill: with the generate, extract, "
                   "reconcile and repair it starts from)")
    p.add_argument("--chunk-accounts", type=int, default=1000,
                   help="accounts per backfill chunk")
    args = p.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="recon-bench-") as tmp:
        root = Path(args.keep) if args.keep else Path(tmp)
        results = []
        if args.only == "callouts":
            from callouts_bench import bench_callouts

            _print(bench_callouts(root / "callouts"))
            return 0
        if args.only == "backfill":
            results.extend(_backfill_only(args, root))
            _print(results)
            return 0
        if not args.skip_diff:
            # First, while the machine is quiet: its sub-second runs are the most sensitive
            # to load, and the tenant benches leave the machine busy for a while (when it ran
            # last: load average 1.7 at its start, every run 20-30% slower).
            from diff_bench import bench_diff

            results.append(bench_diff())
        if not args.skip_callouts:
            # Latency figures, also sensitive to load: before the tenant benches too.
            from callouts_bench import bench_callouts

            results.extend(bench_callouts(root / "callouts"))
        results.append(bench_generate(args.accounts, args.format, root))
        if not args.skip_extract:
            from extract_bench import bench_extract

            results.append(bench_extract(root / f"tenant-{args.accounts}", root / "work"))
            from reconcile_bench import bench_reconcile

            rec = bench_reconcile(root / "work")
            results.append(rec)
            from validate_bench import bench_validate

            results.append(bench_validate(Path(rec["snapshot"]), reconcile_s=rec["wall_s"]))
            from repair_bench import bench_repair

            results.append(bench_repair(root / "work", Path(rec["snapshot"]).name))
            from backfill_bench import bench_backfill

            results.append(bench_backfill(root / "work", Path(rec["snapshot"]).name,
                                          args.chunk_accounts))
        from report_bench import bench_report

        results.append(bench_report())
        _print(results)
    return 0


def _backfill_only(args: argparse.Namespace, root: Path) -> list[dict]:
    """Generate and extract the tenant, reconcile and plan its 1% drift (the nightly plan's
    figures), then backfill its snapshot into an empty database."""
    from backfill_bench import bench_backfill
    from extract_bench import bench_extract
    from reconcile_bench import bench_reconcile
    from repair_bench import bench_repair

    out = [bench_generate(args.accounts, args.format, root),
           bench_extract(root / f"tenant-{args.accounts}", root / "work")]
    rec = bench_reconcile(root / "work")
    run_id = Path(rec["snapshot"]).name
    out += [rec, bench_repair(root / "work", run_id),
            bench_backfill(root / "work", run_id, args.chunk_accounts)]
    return out


def _print(results: list[dict]) -> None:
    for result in results:
        for k, v in result.items():
            print(f"  {k:>26}: {v:,}" if isinstance(v, int) else f"  {k:>26}: {v}")
        print()


if __name__ == "__main__":
    sys.exit(main())
