"""Callouts benchmark (issue 15), run by ``make bench`` (alone: ``make bench-callouts``).

Real processes only: ``recon callouts serve`` / ``recon callouts work`` and ``recon sandbox
serve`` as subprocesses, the inbox and the local side in throwaway PostgreSQL databases
(``$RECON_BENCH_PG_DSN``, default 127.0.0.1:5432).

1. Receiver throughput: ``recon callouts serve --workers 0`` (the receiver alone: nothing
   syncs the made-up keys) takes the load of ``bench/callout_load.py`` (N threads, keep-alive
   sessions, Basic auth, unique notification ids). Figures: callouts accepted per second, the
   answer time p50/p99 as the client sees it, and a check that every notification id
   answered 200 is in the inbox afterwards.
2. Callout received → local consistent, debounce 0: a generated tenant (drift 0) is served by
   the sandbox, which sends its callouts to the receiver; its local side is loaded into
   PostgreSQL. One mutation at a time (a contact's e-mail, an account's name, a
   subscription's custom field, in turn) goes through the sandbox's mutation API, and the
   local row is polled (every 5 ms) until it holds the new value; latency = that moment minus
   the event's ``received_at`` in the inbox (same host clock). The first mutation of each kind
   is a warm-up (each process's first sync imports the stages and gets a Zuora token): quoted
   apart, not in p50/p99. Twice: the workers in the receiver's process (``serve``, two
   threads), and apart (``serve --workers 0`` + two ``recon callouts work --workers 1``).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg
import requests
from callout_load import percentile
from extract_bench import ADMIN_DSN, _free_port, load_postgres

from core.config import Settings
from core.inbox import open_inbox

REPO = Path(__file__).resolve().parents[1]
USER = "zuora-bench"
TARGET_RATE = 200  # callouts accepted per second, on 2 cores
TARGET_P99_MS = 50  # receiver answer time
TARGET_LAT_P50_MS, TARGET_LAT_P99_MS = 500, 2000  # callout received → local consistent
POLL_S = 0.005
LIGHT_THREADS, LIGHT_COUNT = 2, 1000  # the answer time when the receiver is not saturated


def _env(**settings: str) -> dict[str, str]:
    """The subprocesses' environment: no RECON_* of the caller's, only the bench's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECON_")}
    env["PYTHONPATH"] = str(REPO)
    env.update(settings)
    return env


def _recon(*args: str) -> list[str]:
    return [sys.executable, "-m", "jobs.cli", *args]


@dataclass
class _Procs:
    """The subprocesses of a phase, their logs in ``logs``; stopped (SIGTERM, then kill) on
    exit, so a failed bench leaves none behind."""

    logs: Path
    procs: list[tuple[str, subprocess.Popen]]

    def start(self, name: str, cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = (self.logs / f"{name}.log").open("w")
        proc = subprocess.Popen(cmd, env=env, cwd=self.logs, stdout=log,
                                stderr=subprocess.STDOUT)
        log.close()
        self.procs.append((name, proc))
        return proc

    def fail(self, name: str, why: str) -> SystemExit:
        tail = (self.logs / f"{name}.log").read_text()[-2000:]
        return SystemExit(f"callouts bench: {name} {why}; its log ends:\n{tail}")

    def wait_http(self, name: str, url: str, timeout: float = 90) -> None:
        proc = dict(self.procs)[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise self.fail(name, f"exited with {proc.returncode}")
            try:
                if requests.get(url, timeout=2).status_code < 500:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise self.fail(name, f"did not answer {url} within {timeout:.0f}s")

    def stop(self, *names: str) -> None:
        for _name, proc in [p for p in self.procs if not names or p[0] in names]:
            if proc.poll() is None:
                proc.terminate()
        for name, proc in [p for p in self.procs if not names or p[0] in names]:
            try:
                code = proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait(10)
            if code not in (0, -15):  # the sandbox ends on SIGTERM's default action
                print(f"  (callouts bench: {name} exited with {code} on SIGTERM; see "
                      f"{self.logs / (name + '.log')})")
        self.procs = [p for p in self.procs if names and p[0] not in names]


def _create_db(name: str) -> str:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    return ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"


def _drop_db(name: str) -> None:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _vs(value: float, target: str, unit: str = "", digits: int = 0) -> str:
    return f"{value:,.{digits}f}{unit} (target {target})"


# -- 1. receiver throughput ------------------------------------------------------------------
def bench_receiver(work: Path, password: str, *, threads: int, count: int) -> dict:
    db = "recon_bench_callouts_load"
    url = _create_db(db)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = _env(RECON_DATA_DIR=str(work / "load"), RECON_LOCAL_DATABASE_URL=url,
               RECON_CALLOUTS_USER=USER, RECON_CALLOUTS_PASSWORD=password)
    procs = _Procs(work, [])
    try:
        procs.start("receiver-load", _recon("callouts", "serve", "--port", str(port),
                                            "--metrics-port", "0", "--workers", "0"), env)
        procs.wait_http("receiver-load", base + "/healthz")
        client_env = {**env, "CALLOUT_LOAD_PASSWORD": password}
        runs = []
        for label, n, t in (("warmup", max(threads * 10, 100), threads),
                            ("measured", count, threads), ("light", LIGHT_COUNT, LIGHT_THREADS)):
            out = work / f"load-{label}.json"
            subprocess.run([sys.executable, str(REPO / "bench" / "callout_load.py"), "--url",
                            base, "--user", USER, "--threads", str(t), "--count", str(n),
                            "--prefix", f"{label}-", "--out", str(out)],
                           env=client_env, check=True)
            runs.append(json.loads(out.read_text()))
        procs.stop()
        settings = replace(Settings(), data_dir=work / "load", local_database_url=url)
        with open_inbox(settings) as inbox:
            stored = inbox.event_ids()
    finally:
        procs.stop()
        _drop_db(db)
    warm, load, light = runs
    answered = set(warm["ok_ids"]) | set(load["ok_ids"]) | set(light["ok_ids"])
    missing = answered - stored
    return {
        "bench": "callout receiver (recon callouts serve --workers 0, inbox on PostgreSQL)",
        "client": f"bench/callout_load.py, {threads} threads, keep-alive, Basic auth",
        "callouts_sent": load["sent"], "answered": load["statuses"],
        "accepted_per_s": _vs(load["accepted_per_s"], f"≥ {TARGET_RATE}/s"),
        "answer_p50_ms": f"{load['p50_ms']:.1f}",
        "answer_p99_ms": _vs(load["p99_ms"], f"< {TARGET_P99_MS} ms", digits=1),
        "answer_max_ms": f"{load['max_ms']:.1f}",
        f"at_{LIGHT_THREADS}_threads": (f"{light['accepted_per_s']:,.0f}/s, answer p50 "
                                        f"{light['p50_ms']:.1f} ms, p99 {light['p99_ms']:.1f} ms"),
        "answered_200_in_inbox": (f"all {len(answered):,} (warm-up and the "
                                  f"{LIGHT_THREADS}-thread run included)" if not missing else
                                  f"{len(missing):,} of {len(answered):,} MISSING"),
    }


# -- 2. callout received → local consistent --------------------------------------------------
@dataclass(frozen=True)
class _Key:
    """One record to change: the sandbox object and id, the inbox's (object, key), and the
    local row and column where the sync puts the new value."""

    zobject: str
    zid: str
    field: str
    event: tuple[str, str]
    sql: str


def _keys(tenant: Path) -> dict[str, list[_Key]]:
    """Records of the tenant that have a local copy (some Zuora contacts have none, by
    design: a sync of those rightly writes nothing)."""
    import duckdb

    with duckdb.connect(str(tenant / "local.duckdb"), read_only=True) as local:
        def ids(sql: str) -> set[str]:
            return {r[0] for r in local.execute(sql).fetchall()}

        contacts = ids("SELECT zuora_contact_id FROM billing_account_contacts")
        accounts = ids("SELECT zuora_account_id FROM billing_accounts")
        versions = ids("SELECT zuora_id FROM zuora_local_subscriptions")

    def rows(obj: str, have: set[str]) -> list[dict]:
        with (tenant / "zuora" / f"{obj}.jsonl").open() as f:
            return [r for r in map(json.loads, f) if r["Id"] in have]

    return {
        "contact": [_Key("Contact", r["Id"], "WorkEmail", ("contact", r["Id"]),
                         "SELECT work_email FROM billing_account_contacts "
                         "WHERE zuora_contact_id = %s") for r in rows("Contact", contacts)],
        "account": [_Key("Account", r["Id"], "Name", ("account", r["Id"]),
                         "SELECT zuora_account_name FROM billing_accounts "
                         "WHERE zuora_account_id = %s") for r in rows("Account", accounts)],
        "subscription": [_Key("Subscription", r["Id"], "GitLabNamespaceName__c",
                              ("subscription", r["Name"]),
                              "SELECT git_lab_namespace_name__c FROM zuora_local_subscriptions "
                              "WHERE zuora_id = %s")
                         for r in rows("Subscription", versions) if r.get("IsLatestVersion")],
    }


@dataclass(frozen=True)
class _Timing:
    """Seconds, for one mutation: callout received → local consistent (the figure), mutation
    sent → consistent, received → its sync started (debounce, polling, queue), the sync."""

    latency: float
    from_mutation: float
    to_sync_start: float
    sync: float


def _value(key: _Key, tag: str) -> str:
    return f"bench.{tag}@example.com" if key.field == "WorkEmail" else f"bench-{tag}"


def _measure(sandbox: str, db_url: str, settings: Settings, keys: list[_Key], tag: str,
             timeout: float = 60) -> list[_Timing]:
    """Mutate each key in turn, wait until its local row holds the new value; returns the
    timings of each."""
    seen: list[tuple[_Key, float, float]] = []
    with requests.Session() as http, psycopg.connect(db_url, autocommit=True) as db:
        for i, key in enumerate(keys):
            value = _value(key, f"{tag}-{i}")
            sent = time.time()
            http.post(f"{sandbox}/sandbox/mutations", timeout=30, json={
                "op": "update", "object": key.zobject, "id": key.zid,
                "fields": {key.field: value}}).raise_for_status()
            deadline = time.monotonic() + timeout
            while True:
                row = db.execute(key.sql, [key.zid]).fetchone()
                if row and row[0] == value:
                    seen.append((key, sent, time.time()))
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"callouts bench: {key.zobject} {key.zid} not consistent "
                                     f"within {timeout:.0f}s of its mutation; the inbox: "
                                     f"{_inbox_state(settings, key)}")
                time.sleep(POLL_S)
    # the worker records the sync in the inbox just after its commit made the row consistent
    deadline = time.monotonic() + timeout
    while True:
        with open_inbox(settings) as inbox:
            events = inbox.events(limit=100_000)
            log = {e.sync_id: e for e in inbox.sync_log(100_000)}
        received: dict[tuple[str, str], float] = {}
        syncs: dict[tuple[str, str], tuple[float, float]] = {}
        for e in events:
            at = e.received_at.timestamp()
            for k in e.keys:
                received[k] = min(received.get(k, at), at)
                entry = log.get(e.sync_id or "")
                if entry is not None:
                    syncs[k] = (entry.started_at.timestamp(), entry.finished_at.timestamp())
        if all(k.event in syncs for k, _, _ in seen):
            break
        if time.monotonic() > deadline:
            raise SystemExit("callouts bench: the inbox does not record the syncs of "
                             f"{[k.event for k, _, _ in seen if k.event not in syncs]}")
        time.sleep(0.1)
    return [_Timing(done - received[k.event], done - sent,
                    syncs[k.event][0] - received[k.event],
                    syncs[k.event][1] - syncs[k.event][0]) for k, sent, done in seen]


def _inbox_state(settings: Settings, key: _Key) -> str:
    """What the inbox knows of ``key`` (for the message when a mutation never syncs)."""
    with open_inbox(settings) as inbox:
        events = [e for e in inbox.events() if key.event in e.keys]
        pending = [p for p in inbox.pending() if (p.object, p.key) == key.event]
        dead = [d for d in inbox.dead_letters() if (d.object, d.key) == key.event]
        log = inbox.sync_log(3)
    return (f"events {[(e.status, e.sync_id) for e in events]}, pending "
            f"{[(p.state, p.attempts, p.last_error) for p in pending]}, dead "
            f"{[d.reason for d in dead]}, last syncs {[(e.status, e.message) for e in log]}")


def bench_latency(work: Path, tenant: Path, db_url: str, sandbox: str, port: int,
                  password: str, *, apart: bool, keys: dict[str, list[_Key]],
                  mutations: int) -> dict:
    base = f"http://127.0.0.1:{port}"
    data = work / ("apart" if apart else "in-process")
    debounce0 = {f"RECON_CALLOUTS_DEBOUNCE_{k}_S": "0"
                 for k in ("CONTACT", "ACCOUNT", "SUBSCRIPTION", "CATALOG")}
    env = _env(RECON_DATA_DIR=str(data), RECON_LOCAL_DATABASE_URL=db_url,
               RECON_ZUORA_BASE_URL=sandbox, RECON_ZUORA_CLIENT_SECRET="sandbox-secret",
               RECON_CALLOUTS_USER=USER, RECON_CALLOUTS_PASSWORD=password,
               RECON_CALLOUTS_WORKERS="2", **debounce0)
    settings = replace(Settings(), data_dir=data, local_database_url=db_url)
    kinds = list(keys)
    # each mode takes its own keys: warm-up (one per kind), then the measured ones
    take = {k: [keys[k].pop() for _ in range(1 + -(-mutations // len(kinds)))] for k in kinds}
    warm = [take[k].pop() for k in kinds]
    measured = [take[kinds[i % len(kinds)]].pop() for i in range(mutations)]
    procs = _Procs(work, [])
    mode = "apart" if apart else "in-process"
    try:
        serve = _recon("callouts", "serve", "--port", str(port), "--metrics-port", "0")
        procs.start(f"receiver-{mode}", serve + (["--workers", "0"] if apart else []), env)
        if apart:
            for i in range(2):
                procs.start(f"worker-{i}", _recon("callouts", "work", "--workers", "1",
                                                  "--metrics-port", "0"), env)
        procs.wait_http(f"receiver-{mode}", base + "/healthz")
        time.sleep(1.0 if apart else 0)  # the work processes' start (no port to probe)
        for name, proc in procs.procs:
            if proc.poll() is not None:
                raise procs.fail(name, f"exited with {proc.returncode}")
        cold = _measure(sandbox, db_url, settings, warm, f"{mode}-warm")
        timings = _measure(sandbox, db_url, settings, measured, mode)
    finally:
        procs.stop()

    def p(field: str, q: float) -> float:
        return percentile([getattr(t, field) * 1000 for t in timings], q)

    where = ("workers apart: serve --workers 0 + 2 × `recon callouts work --workers 1`"
             if apart else "workers in the receiver's process: serve, 2 worker threads")
    return {
        "bench": f"callout received → local PostgreSQL row consistent ({where})",
        "debounce_s": 0, "mutations": len(timings),
        "p50_ms": _vs(p("latency", 50), f"< {TARGET_LAT_P50_MS} ms"),
        "p99_ms": _vs(p("latency", 99), f"< {TARGET_LAT_P99_MS} ms"),
        "max_ms": round(p("latency", 100)),
        "from_mutation_p50_ms": round(p("from_mutation", 50)),
        "received_to_sync_p50_ms": f"{p('to_sync_start', 50):,.0f} (p99 "
                                   f"{p('to_sync_start', 99):,.0f})",
        "sync_p50_ms": f"{p('sync', 50):,.0f} (p99 {p('sync', 99):,.0f})",
        "first_sync_per_kind_ms": ", ".join(f"{k} {c.latency * 1000:,.0f}"
                                            for k, c in zip(kinds, cold, strict=True)),
    }


def bench_callouts(root: Path, *, accounts: int = 200, threads: int = 8, count: int = 3000,
                   mutations: int = 50) -> list[dict]:
    """All three measurements; ``root`` holds the tenant and the processes' logs."""
    root.mkdir(parents=True, exist_ok=True)
    load_1m = os.getloadavg()[0]
    password = secrets.token_urlsafe(16)  # a per-run credential: nothing to protect
    results = [bench_receiver(root, password, threads=threads, count=count)]
    tenant = root / f"callouts-tenant-{accounts}"
    subprocess.run(_recon("-q", "sandbox", "generate", "--accounts", str(accounts), "--seed",
                          "15", "--drift", "0", "--out", str(tenant)),
                   env=_env(), check=True)
    db = "recon_bench_callouts"
    db_url = load_postgres(tenant, db)
    port, sport = _free_port(), _free_port()
    sandbox = f"http://127.0.0.1:{sport}"
    procs = _Procs(root, [])
    try:
        procs.start("sandbox", _recon(
            "sandbox", "serve", "--data", str(tenant), "--port", str(sport),
            "--callout-url", f"http://127.0.0.1:{port}", "--callout-retry-interval", "0.2",
            "--callout-attempts", "5"),
            _env(RECON_SANDBOX_CALLOUT_AUTH=f"{USER}:{password}"))
        procs.wait_http("sandbox", sandbox + "/sandbox/callouts")
        keys = _keys(tenant)
        for apart in (False, True):
            results.append(bench_latency(root, tenant, db_url, sandbox, port, password,
                                         apart=apart, keys=keys, mutations=mutations))
    finally:
        procs.stop()
        _drop_db(db)
    results[0]["load_average_1m_at_start"] = f"{load_1m:.1f} (the cores are shared)"
    return results


def main() -> int:
    from run import machine

    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--accounts", type=int, default=200)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--count", type=int, default=3000)
    p.add_argument("--mutations", type=int, default=50)
    p.add_argument("--keep", type=Path, help="keep the tenant and the logs here")
    args = p.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="recon-bench-callouts-") as tmp:
        for result in bench_callouts(args.keep or Path(tmp), accounts=args.accounts,
                                     threads=args.threads, count=args.count,
                                     mutations=args.mutations):
            for k, v in result.items():
                print(f"  {k:>26}: {v:,}" if isinstance(v, int) else f"  {k:>26}: {v}")
            print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
