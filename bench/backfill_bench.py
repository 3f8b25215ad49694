"""Backfill benchmark (``make bench``, after the extract bench): ``recon backfill`` of the
tenant's full snapshot into an EMPTY PostgreSQL database, as its own process.

Reports the wall time of the backfill alone (the extract it starts from is the extract bench's;
recording the snapshot's validation verdict, when the extract left it unvalidated, is not
timed), the peak RSS of recon's process (DuckDB runs inside it; PostgreSQL's memory is not
included: its database size is quoted apart), the plan's bytes on disk (JSON summary and
Parquet chunks), rows inserted and insert throughput. It runs twice, each time into a new
empty database: without the local-copy guards (``core.localdb.guards.remove`` after the
schema is created), then with every guard installed (the copy tables' statement triggers and
the column guards of every mixed table, ``guards.plan`` of them all), for the throughput
with and without guards.

Alone, at a small size: ``python bench/run.py --accounts 300 --only backfill``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import psycopg
from extract_bench import ADMIN_DSN, _run_measured

from core.localdb.connect import connect

TARGETS = {"wall_s": 300, "peak_rss_mib": 2048}  # issue 16: < 5 min on 2 cores, < 2 GB


def _empty_database(dbname: str) -> str:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {dbname}")
    url = ADMIN_DSN.rsplit("/", 1)[0] + f"/{dbname}"
    with connect(url) as db:
        db.init_schema()  # the local schema and recon's objects, stamped; no rows
    return url


def _ensure_passed(work: Path, run_id: str) -> str:
    """The snapshot's verdict; an unvalidated one is validated and recorded first (what the
    nightly job does; not timed)."""
    from core.config import load_settings
    from core.snapshot import find_complete
    from core.state import StateDB

    with StateDB(work) as st:
        verdict = st.verdict(run_id).verdict
    if verdict == "unvalidated":
        from jobs.lineage import validate_recorded

        snap = find_complete(work, run_id)
        assert snap is not None, f"no complete snapshot {run_id} under {work}"
        settings = load_settings(None)
        validate_recorded(snap, work, settings=settings, gx=False)
        with StateDB(work) as st:
            verdict = st.verdict(run_id).verdict
    return verdict


def _set_guards(url: str, on: bool) -> list[str]:
    """Install every guard (the copy tables' and the column guards of every mixed table), or
    take them all out; returns the tables guarded."""
    from core.localdb import guards

    with connect(url) as db:
        if not on:
            guards.remove(db)
            return []
        return guards.install(db, guards.plan(sorted(guards.guardable_columns())))


def _one(work: Path, run_id: str, url: str, chunk_accounts: int) -> dict:
    env = {**os.environ, "RECON_DATA_DIR": str(work), "RECON_LOCAL_DATABASE_URL": url}
    wall, rss = _run_measured(
        [sys.executable, "-m", "jobs.cli", "-q", "backfill", "--snapshot", run_id,
         "--chunk-accounts", str(chunk_accounts), "--db", url], env)
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT coalesce(sum(ops_applied), 0), count(*) FROM "
                            "recon_backfill_chunks").fetchone()
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    bid = f"bf-{run_id}-c{chunk_accounts}"
    home = work / "backfills" / bid
    plan_bytes = sum(p.stat().st_size for p in home.rglob("*") if p.is_file())
    return {"wall_s": round(wall, 1), "peak_rss_mib": rss, "ops": int(rows[0]),
            "chunks": int(rows[1]), "plan_bytes": plan_bytes, "pg_database_mib":
            round(size / 2**20), "ops_per_s": round(int(rows[0]) / wall) if wall else 0}


def bench_backfill(work: Path, run_id: str, chunk_accounts: int = 1000,
                   dbname: str = "recon_bench_backfill") -> dict:
    verdict = _ensure_passed(work, run_id)
    url = _empty_database(dbname)
    _set_guards(url, on=False)
    plain = _one(work, run_id, url, chunk_accounts)
    out: dict[str, object] = {
        "bench": "recon backfill (empty PostgreSQL database)", "snapshot": run_id,
        "verdict": verdict, "chunk_accounts": chunk_accounts, "chunks": plain["chunks"],
        "rows_inserted": plain["ops"], "wall_s (extract excluded)": plain["wall_s"],
        "wall target < 300 s": "PASS" if plain["wall_s"] < TARGETS["wall_s"] else "FAIL",
        "peak_rss_mib (recon, DuckDB included)": plain["peak_rss_mib"],
        "rss target < 2048 MiB": ("PASS" if plain["peak_rss_mib"] < TARGETS["peak_rss_mib"]
                                  else "FAIL"),
        "postgresql database_mib (apart)": plain["pg_database_mib"],
        "plan_bytes_on_disk": plain["plan_bytes"],
        "apply rows/s without guards": plain["ops_per_s"],
    }
    url2 = _empty_database(dbname + "_guarded")
    out["guarded tables"] = len(_set_guards(url2, on=True))
    guarded = _one(work, run_id, url2, chunk_accounts)
    out["apply rows/s with guards"] = guarded["ops_per_s"]
    out["wall_s with guards"] = guarded["wall_s"]
    out["peak_rss_mib with guards"] = guarded["peak_rss_mib"]
    return out


if __name__ == "__main__":
    print(json.dumps(bench_backfill(Path(sys.argv[1]), sys.argv[2],
                                    int(sys.argv[3]) if len(sys.argv) > 3 else 1000), indent=2))
