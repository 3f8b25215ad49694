"""Extract benchmark on a generated tenant (run by ``make bench`` after the generator bench).

The local side is loaded into a throwaway PostgreSQL database, the sandbox serves the Zuora
side from a separate process, and ``recon extract`` runs as its own process so its peak RSS
is its own (``os.wait4``). Then 0.1% of subscription versions change through the sandbox's
mutation API and an incremental extract runs.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import requests

from core.localdb import schema
from core.localdb.connect import connect

ADMIN_DSN = os.environ.get("RECON_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Linux keeps ru_maxrss across execve, so a child forked from this (large) process would
# report our high-water mark. A small launcher process forks the measured command instead and
# reports that child's own peak.
_LAUNCHER = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
open(sys.argv[1], "w").write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _run_measured(cmd: list[str], env: dict) -> tuple[float, int]:
    """(wall seconds, peak RSS MiB) of one command, measured in its own process."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        t0 = time.perf_counter()
        code = subprocess.run([sys.executable, "-c", _LAUNCHER, rss.name, *cmd], env=env).returncode
        wall = time.perf_counter() - t0
        if code != 0:
            raise SystemExit(f"{' '.join(cmd)} failed with {code}")
        return wall, round(int(open(rss.name).read()) / 1024)


def load_postgres(tenant: Path, dbname: str) -> str:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {dbname}")
    url = ADMIN_DSN.rsplit("/", 1)[0] + f"/{dbname}"
    with connect(f"duckdb:///{tenant / 'local.duckdb'}") as src, connect(url) as dst:
        dst.init_schema()
        with dst.writing("load", "bench"):  # recon loading a database it manages
            for table in schema.all_tables():
                dst.load(table, src.read_table(table))
        dst.reset_identities()
    return url


def bench_extract(tenant: Path, work: Path) -> dict:
    pg_url = load_postgres(tenant, "recon_bench")
    port = _free_port()
    env = {**os.environ, "RECON_ZUORA_BASE_URL": f"http://127.0.0.1:{port}",
           "RECON_ZUORA_CLIENT_SECRET": "sandbox-secret", "RECON_LOCAL_DATABASE_URL": pg_url,
           "RECON_DATA_DIR": str(work)}
    server = subprocess.Popen([sys.executable, "-m", "jobs.cli", "sandbox", "serve", "--data",
                               str(tenant), "--port", str(port)], env=env,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        for line in server.stdout:  # "… serving …" is printed once the dataset is loaded
            if "serving" in line:
                break
        else:
            raise SystemExit("the sandbox exited before serving")
        full_wall, full_rss = _run_measured(
            [sys.executable, "-m", "jobs.cli", "-q", "extract", "--mode", "full"], env)
        manifests = sorted((work / "snapshots").glob("*/manifest.json"))
        full = json.loads(manifests[-1].read_text())
        # 0.1% of subscription versions change in Zuora (custom field outside an order)
        subs = [json.loads(line)["Id"] for line in
                (tenant / "zuora" / "Subscription.jsonl").open()]
        step = 1000
        t0 = time.perf_counter()
        with requests.Session() as http:
            for sid in subs[::step]:
                http.post(f"http://127.0.0.1:{port}/sandbox/mutations", json={
                    "op": "update", "object": "Subscription", "id": sid,
                    "fields": {"TurnOnSeatReconciliation__c": "Yes"}}).raise_for_status()
        mutate_s = time.perf_counter() - t0
        inc_wall, inc_rss = _run_measured(
            [sys.executable, "-m", "jobs.cli", "-q", "extract", "--mode", "incremental",
             "--lag-hours", "0"], env)
        manifests = sorted((work / "snapshots").glob("*/manifest.json"),
                           key=lambda p: p.stat().st_mtime)
        inc = json.loads(manifests[-1].read_text())
    finally:
        server.terminate()
        server.wait(timeout=30)
    zrows = sum(int(v["rows"]) for v in full["zuora"].values())
    lrows = sum(int(v["rows"]) for v in full["local"].values())
    lsecs = sum(float(v.get("duration_s", 0)) for v in full["local"].values())
    return {
        "bench": "recon extract", "zuora_rows": zrows, "full_wall_s": round(full_wall, 1),
        "full_records_per_s": round(zrows / full_wall), "full_peak_rss_mib": full_rss,
        "full_api_calls": full.get("api", {}).get("calls", full.get("api")),
        "local_rows": lrows, "local_export_rows_per_s_pg": round(lrows / lsecs) if lsecs else 0,
        "changed_versions": len(subs[::step]), "mutations_s": round(mutate_s, 1),
        "incremental_mode": inc.get("mode"), "incremental_wall_s": round(inc_wall, 1),
        "incremental_peak_rss_mib": inc_rss,
        "incremental_delta_rows": sum(int(v.get("delta_rows", 0))
                                      for v in inc.get("zuora", {}).values()),
        "incremental_upserted_subscriptions": inc.get("zuora", {}).get("Subscription", {}).get(
            "upserted", 0),
    }
