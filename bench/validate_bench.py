"""Validation benchmark on a snapshot (``make bench``; never part of the tests):

    .venv/bin/python bench/validate_bench.py DATA/snapshots/<run_id> [--repeat 3] [--pandera]

Measures, on the snapshot as it is (results and quarantine go to a throwaway data directory):

* contracts: shape (pandera on zero-row frames), rows (compiled checks) with and without the
  Parquet reads, wall time of the whole contract step (median of ``--repeat``), rows/s; the
  same step with the files' column profiles ignored (every rule read from the rows); and
  what computing those profiles costs the extractor (``core.profile``), so the target
  is also judged with that work counted;
* business rules: ``import great_expectations`` (once per process), then every suite on its
  view (DuckDB view materialisation + GX), split per view;
* ``--pandera``: pandera's own row validation of every frame (``Model.validate(df,
  lazy=True)``), the engine the compiled checks replace, for comparison.

The contract target is under 10% of the reconcile time of the same snapshot.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import duckdb  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from core.snapshot import open_snapshot  # noqa: E402
from expectations import contracts as ct  # noqa: E402
from expectations import rules, sources  # noqa: E402
from expectations.validate import contract_rows  # noqa: E402


def machine() -> str:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores, {mem:.0f} GiB RAM, Python {sys.version.split()[0]}"


class _NoProfiles:
    """A snapshot source whose files seem to have no column profile: every rule is read."""

    def __init__(self, src: sources.SnapshotSource) -> None:
        self._src = src

    def __getattr__(self, name: str):
        return getattr(self._src, name)

    def profile(self, side: str, name: str) -> None:
        return None


def contracts_once(src) -> dict[str, float]:
    """The contract step exactly as ``recon validate`` runs it (``validate.contract_rows``)."""
    ct._shape_failures.cache_clear()  # a nightly run is a fresh process: no cached shapes
    t0 = time.perf_counter()
    for side, name in sources.names():
        c = ct.contract(side, name)
        assert not ct.shape_failures(c, src.schema(side, name)), name
    t1 = time.perf_counter()
    load = 0.0
    rows = 0
    for side, name in sources.names():
        outcome, load_s = contract_rows(src, side, name, "bench")
        assert not outcome.fatal and not outcome.quarantine.height, name
        load += load_s
        rows += src.rows(side, name)
    total = time.perf_counter() - t0
    return {"shape_s": t1 - t0, "load_s": load, "check_s": total - (t1 - t0) - load,
            "total_s": total, "rows": rows}


def profile_cost(snapshot_dir: Path) -> dict[str, float]:
    """What writing the column profiles costs the extractor: ``core.profile.Profiler``
    fed every snapshot file in the row groups ``ParquetSink`` writes, timing the profiler
    alone (the reads are the benchmark's, not the extractor's)."""
    from core.profile import Profiler, local_enums, local_keys, zuora_enums, zuora_keys
    from core.snapshot import ROW_GROUP_ROWS

    spent, rows = 0.0, 0
    for side, name in sources.names():
        path = snapshot_dir / side / f"{name}.parquet"
        pf = pq.ParquetFile(path)
        keys, enums = ((zuora_keys(name), zuora_enums(name)) if side == ct.ZUORA
                       else (local_keys(name), local_enums(name)))
        prof = Profiler(pf.schema_arrow, keys, enums)
        for rb in pf.iter_batches(batch_size=ROW_GROUP_ROWS):
            batch = pa.Table.from_batches([rb])
            t = time.perf_counter()
            prof.update(batch)
            spent += time.perf_counter() - t
        t = time.perf_counter()
        prof.result()
        spent += time.perf_counter() - t
        rows += pf.metadata.num_rows
    return {"seconds": spent, "rows": rows}


def pandera_rows(src: sources.SnapshotSource) -> float:
    """pandera's native row validation of every frame (the slow path, for comparison)."""
    import pandera.polars as pa

    total = 0.0
    for side, name in sources.names():
        c = ct.contract(side, name)
        frame = src.frame(side, name)
        t = time.perf_counter()
        try:
            c.model.validate(frame, lazy=True)
        except pa.errors.SchemaErrors:
            pass
        total += time.perf_counter() - t
        del frame
    return total


def gx_once(src: sources.SnapshotSource) -> dict[str, float]:
    t0 = time.perf_counter()
    with rules._quiet_gx():
        import great_expectations  # noqa: F401
    t1 = time.perf_counter()
    con = duckdb.connect()
    src.register(con)
    per_view: dict[str, float] = {}
    suites = rules.load_suites(run_id="bench")
    for view in rules.VIEWS:
        mine = rules.Suites([r for r in suites.rules if r.view == view], [])
        t = time.perf_counter()
        out = rules.run_suites(con, "bench", mine)
        per_view[view] = time.perf_counter() - t
        assert not [r for r in out if r.outcome == "error"], view
    con.close()
    return {"import_s": t1 - t0, "suites_s": sum(per_view.values()),
            **{f"view {k}": v for k, v in sorted(per_view.items(), key=lambda x: -x[1])[:6]}}


def bench_validate(snapshot_dir: Path, repeat: int = 3, with_pandera: bool = False,
                   reconcile_s: float | None = None) -> dict:
    """The figures above as one dict (``bench/run.py`` prints it). ``reconcile_s``: the
    reconcile wall time of the same snapshot, to report the contract share against the
    10% target."""
    snap = open_snapshot(snapshot_dir)
    src = sources.SnapshotSource(snap)
    runs = [contracts_once(src) for _ in range(repeat)]
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    bare = [contracts_once(_NoProfiles(src)) for _ in range(repeat)]
    bare_s = statistics.median(r["total_s"] for r in bare)
    prof = {"seconds": statistics.median(profile_cost(snap.path)["seconds"]
                                         for _ in range(repeat))}
    out: dict[str, object] = {
        "bench": "validate", "snapshot": snap.run_id,
        "rows (both sides)": int(med["rows"]),
        "contracts_s (median)": round(med["total_s"], 2),
        "contracts shape_s": round(med["shape_s"], 2),
        "contracts parquet read_s": round(med["load_s"], 2),
        "contracts row checks_s": round(med["check_s"], 2),
        "contracts rows/s": round(med["rows"] / med["total_s"]),
        "contracts runs_s": ", ".join(f"{r['total_s']:.2f}" for r in runs),
        "contracts without profiles_s": round(bare_s, 2),
        "column profiles at extract_s": round(prof["seconds"], 2),
    }
    if reconcile_s:
        share = 100 * med["total_s"] / reconcile_s
        out["contracts % of reconcile"] = f"{share:.1f}% of {reconcile_s:.1f}s (target < 10%: " \
            f"{'PASS' if share < 10 else 'FAIL'})"
        both = 100 * (med["total_s"] + prof["seconds"]) / reconcile_s
        out["contracts + extract profiles %"] = f"{both:.1f}% of {reconcile_s:.1f}s (the " \
            f"work moved to the extractor counted too: {'PASS' if both < 10 else 'FAIL'})"
    if with_pandera:
        out["pandera native row validation_s"] = round(pandera_rows(src), 1)
    gx = gx_once(src)
    out["gx import_s"] = round(gx.pop("import_s"), 2)
    out["gx suites_s"] = round(gx.pop("suites_s"), 2)
    out.update({k: round(v, 2) for k, v in gx.items()})
    with tempfile.TemporaryDirectory(prefix="recon-validate-bench-") as tmp:
        from core.config import Settings
        from expectations.validate import validate_snapshot

        t = time.perf_counter()
        res = validate_snapshot(snap, tmp, settings=Settings(data_dir=Path(tmp)))
        out["validate_snapshot end-to-end_s"] = round(time.perf_counter() - t, 2)
        out["checks"] = res.results.height
        out["failed checks"] = int((res.results["outcome"] == "failed").sum())
        out["quarantined rows"] = res.quarantined
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("snapshot", type=Path, help="a snapshot directory (DATA/snapshots/<run_id>)")
    p.add_argument("--repeat", type=int, default=3, help="contract runs (median reported)")
    p.add_argument("--pandera", action="store_true",
                   help="also time pandera's native row validation (slow)")
    p.add_argument("--reconcile-s", type=float,
                   help="reconcile wall time of this snapshot (bench/reconcile_bench.py), to "
                   "report the contracts' share")
    args = p.parse_args()
    print(f"machine: {machine()}")
    for k, v in bench_validate(args.snapshot, args.repeat, args.pandera,
                               args.reconcile_s).items():
        print(f"  {k:>40}: {v:,}" if isinstance(v, int) else f"  {k:>40}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
