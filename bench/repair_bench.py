"""Repair benchmark: plan and apply the auto findings of the 100,000-account snapshot (1%
drift) on the PostgreSQL local database the extract bench loaded, each step as its own process
(wall time, peak RSS), the nightly plan's bytes on disk (version 3: JSON summary and Parquet
chunks) and operations/rows per second."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from extract_bench import ADMIN_DSN, _run_measured


def bench_repair(work: Path, run_id: str, dbname: str = "recon_bench") -> dict:
    pg_url = ADMIN_DSN.rsplit("/", 1)[0] + f"/{dbname}"
    env = {**os.environ, "RECON_DATA_DIR": str(work), "RECON_LOCAL_DATABASE_URL": pg_url}
    plan_path = work / "bench-plan.json"
    plan_s, plan_rss = _run_measured(
        [sys.executable, "-m", "jobs.cli", "-q", "repair", "plan", "--run", run_id, "--out",
         str(plan_path)], env)
    plan = json.loads(plan_path.read_text())  # version 3: the summary; chunks beside it
    ops = sum(c["operations"] for c in plan["chunks"])
    plan_bytes = plan_path.stat().st_size + sum(
        p.stat().st_size for p in plan_path.with_name(plan_path.stem + ".ops").glob("*"))
    apply_s, apply_rss = _run_measured(
        [sys.executable, "-m", "jobs.cli", "-q", "repair", "apply", str(plan_path), "--yes",
         "--force"], env)
    return {
        "bench": "recon repair (PostgreSQL local database)", "operations": ops,
        "transactions": plan["summary"]["groups"],
        "needs_a_person": len(plan["needs_a_person"]),
        "plan_wall_s": round(plan_s, 1), "plan_peak_rss_mib": plan_rss,
        "plan_bytes_on_disk": plan_bytes, "plan_chunks": len(plan["chunks"]),
        "apply_wall_s": round(apply_s, 1), "apply_peak_rss_mib": apply_rss,
        "apply_ops_per_s": round(ops / apply_s) if apply_s else 0,
    }


if __name__ == "__main__":
    print(json.dumps(bench_repair(Path(sys.argv[1]), sys.argv[2]), indent=2))
