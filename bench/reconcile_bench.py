"""Full reconcile benchmark: every object and every rule on the snapshot the extract bench
left behind (a 100,000-account tenant), as its own process so its peak RSS is its own.

Targets (issue 4): wall time < 30 s on 2 cores, peak RSS < 4 GB.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from extract_bench import _run_measured


def bench_reconcile(work: Path) -> dict:
    env = {**os.environ, "RECON_DATA_DIR": str(work)}
    snaps = sorted(p for p in (work / "snapshots").iterdir()
                   if (p / "manifest.json").is_file() and not p.name.endswith(".failed"))
    run = json.loads((snaps[0] / "manifest.json").read_text())["run_id"]  # the full export
    wall, rss = _run_measured([sys.executable, "-m", "jobs.cli", "-q", "reconcile", "--run",
                               run], env)
    summary = json.loads((work / "runs" / run / "summary.json").read_text())
    manifest = json.loads((snaps[0] / "manifest.json").read_text())
    rows = sum(int(v["rows"]) for v in manifest["zuora"].values()) + sum(
        int(v["rows"]) for v in manifest["local"].values())
    timings = summary.get("timings", {})
    return {
        "bench": "recon reconcile (all objects and rules)", "snapshot": str(snaps[0]),
        "rows_both_sides": rows,
        "wall_s": round(wall, 1), "peak_rss_mib": rss,
        "diff_s": round(timings.get("diff", 0), 1), "rules_s": round(timings.get("rules", 0), 1),
        "annotate_s": round(timings.get("annotate", 0), 1), "findings": summary["findings"],
        "target_wall_lt_30s": "PASS" if wall < 30 else "FAIL",
        "target_rss_lt_4gb": "PASS" if rss < 4096 else "FAIL",
    }


if __name__ == "__main__":
    print(json.dumps(bench_reconcile(Path(sys.argv[1])), indent=2))
