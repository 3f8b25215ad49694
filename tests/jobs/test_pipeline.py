"""`recon run`: the whole job against the Zuora sandbox over HTTP and a real PostgreSQL local
database — history, retries of transient failures only, the job lock (and its recovery after
kill -9), alerts without secrets, idempotency, and the catalog-only job."""

from __future__ import annotations

import functools
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from core.config import Secret, Settings
from core.snapshot import latest_complete
from core.state import StateDB, state_path
from jobs import runs
from jobs.locks import JobLocked
from jobs.pipeline import JobResult, run_job, run_steps
from sandbox.generate.run import Options, generate
from sandbox.server import SandboxServer
from tests.support.extract import fast_options

SECRET = "sandbox-secret"
REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def tenant(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("jobs-tenant")
    generate(Options(accounts=120, seed=21, drift=0.05), out)
    return out


@pytest.fixture
def env(tenant: Path, tmp_path: Path, pg_url: str):
    """A sandbox serving the tenant and a PostgreSQL local database loaded with its local
    side; settings pointing at both."""
    from core.localdb.connect import connect, duckdb_url
    from core.localdb.schema import all_tables

    with connect(duckdb_url(tenant / "local.duckdb")) as src, connect(pg_url) as dst:
        dst.init_schema()
        for table in all_tables():
            dst.load(table, src.read_table(table))
        dst.reset_identities()
    with SandboxServer(tenant, client_id="recon", client_secret=SECRET) as srv:
        srv.store.preload()
        settings = Settings(zuora_base_url=srv.url, zuora_client_secret=Secret(SECRET),
                            local_database_url=pg_url, data_dir=tmp_path / "data",
                            jobs_retries=2, jobs_retry_delay_s=0.0)
        yield srv, settings


def steps(**kw):
    return functools.partial(run_steps, extract_options=fast_options(attempts=2, local=True,
                                                                     **kw))


def _rows(settings: Settings) -> list[dict]:
    with StateDB(settings.data_dir) as st:
        frame = st.con.sql("SELECT * FROM job_runs ORDER BY started_at").pl()
    return frame.to_dicts()


@pytest.mark.slow
def test_nightly_run_records_history_and_a_report(env) -> None:
    _, settings = env
    result = run_job("nightly", settings, steps=steps())
    assert result.status == "drift" and result.attempt == 1
    (row,) = _rows(settings)
    assert row["status"] == "drift" and row["trigger"] == "manual"
    assert row["snapshot_run"] == result.snapshot_run
    counts = json.loads(row["counts"])
    assert counts["new"] > 0 and counts["repair_operations"] > 0
    assert counts["zuora_rows"] > 0 and counts["local_rows"] > 0
    assert row["report_path"] and Path(row["report_path"]).is_file()
    plan = settings.data_dir / "runs" / result.snapshot_run / "repair-plan.json"
    assert plan.is_file(), "the plan is written for review; nothing applied without repair.auto"
    summary = plan.with_suffix(".txt")  # README promises the summary beside it (issue 14 (a))
    assert summary.is_file() and summary.read_text().strip(), "repair-plan.txt is written"
    assert "apply_id" not in counts and "repair" not in counts, "nothing applied"
    # a second manual run: the same findings are now persisting
    again = run_job("nightly", settings, steps=steps())
    assert again.counts["persisting"] == result.counts["new"] and again.counts.get("new", 0) == 0


@pytest.mark.slow
def test_transient_failure_is_retried_and_recorded_as_attempt_2(env) -> None:
    srv, settings = env
    srv.add_fault("aqua_submit", "5xx", times=2, status=503)  # exhausts attempt 1's 2 tries
    result = run_job("nightly", settings, steps=steps())
    assert result.status == "drift" and result.attempt == 2
    first, second = _rows(settings)
    assert (first["status"], first["attempt"], first["trigger"]) == ("failed", 1, "manual")
    assert first["error_class"] == "ExtractError" and "503" in first["error_message"]
    assert (second["status"], second["attempt"], second["trigger"]) == ("drift", 2, "retry")
    assert first["idem_key"] == second["idem_key"]


@pytest.mark.slow
def test_validation_failure_is_not_retried(env) -> None:
    srv, settings = env
    assert run_job("nightly", settings, steps=steps()).status == "drift"
    accounts = srv.store.typed("Account")["Id"].to_list()
    for account in accounts[: int(len(accounts) * 0.3)]:  # 30% of accounts vanish
        srv.store.delete("Account", account)
    result = run_job("full", settings, steps=steps())  # a full export sees the deletions now
    assert result.status == "failed" and result.attempt == 1
    assert type(result.error).__name__ == "VolumeError"
    last = _rows(settings)[-1]
    assert last["status"] == "failed" and last["error_class"] == "VolumeError"
    assert len(_rows(settings)) == 2, "a validation failure is never retried"


class _Receiver(http.server.BaseHTTPRequestHandler):
    bodies: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        n = int(self.headers["Content-Length"])
        type(self).bodies.append({"path": self.path, "body": json.loads(self.rfile.read(n))})
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.slow
def test_alert_reaches_a_local_receiver_without_secrets(env) -> None:
    srv, settings = env
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Receiver.bodies = []
    hook = f"http://127.0.0.1:{server.server_address[1]}/hooks/T0/B0/tok3n-secret"
    try:
        settings = replace(settings, alerts_webhook_url=Secret(hook),
                           zuora_client_secret=Secret("wrong-secret-value"))
        failed = run_job("nightly", settings, steps=steps())  # bad credentials: not transient
        assert failed.status == "failed" and failed.attempt == 1
        good = run_job("nightly", replace(settings, zuora_client_secret=Secret(SECRET)),
                       steps=steps())
        assert good.status == "drift"
    finally:
        server.shutdown()
    kinds = [b["body"]["recon"]["alert"] for b in _Receiver.bodies]
    assert kinds == ["failed", "drift"]
    fail, drift = (b["body"] for b in _Receiver.bodies)
    assert fail["recon"]["job"] == "nightly" and fail["recon"]["run_id"] == failed.run_id
    assert fail["recon"]["status"] == "failed" and "text" in fail
    assert drift["recon"]["counts"]["new"] >= 1 and drift["recon"]["report_path"]
    text = json.dumps(_Receiver.bodies)
    for secret in ("wrong-secret-value", SECRET, "tok3n-secret", "postgresql://"):
        assert secret not in text.replace(_Receiver.bodies[0]["path"], ""), secret


@pytest.mark.slow
def test_scheduled_tick_runs_once_per_date(env) -> None:
    _, settings = env
    import datetime as dt

    tick = dt.datetime(2026, 11, 23, 2, 30)
    first = run_job("nightly", settings, trigger="schedule", scheduled_for=tick, steps=steps())
    dup = run_job("nightly", settings, trigger="schedule",
                  scheduled_for=tick + dt.timedelta(hours=1), day=tick.date(), steps=steps())
    assert first.status == "drift" and dup.status == "skipped"
    rows = _rows(settings)
    assert [r["status"] for r in rows] == ["drift", "skipped"]
    assert "duplicate tick" in rows[1]["error_message"]


_HOLDER = """
import sys, time, functools
from pathlib import Path
from core.config import Settings
from jobs.pipeline import run_job

def slow(job, settings, *, stop, progress):
    Path(sys.argv[3]).write_text("running")
    time.sleep(60)
    return {"status": "clean", "counts": {}}

run_job("nightly", Settings(local_database_url=sys.argv[1], data_dir=Path(sys.argv[2])),
        steps=slow)
"""


@pytest.mark.slow
def test_second_run_is_refused_and_a_killed_runs_lock_is_recovered(env, tmp_path: Path
                                                                   ) -> None:
    _, settings = env
    flag = tmp_path / "started"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, settings.local_database_url, str(settings.data_dir),
         str(flag)], env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        for _ in range(200):
            if flag.exists():
                break
            time.sleep(0.05)
        assert flag.exists(), "the holder never started its run"
        with pytest.raises(JobLocked, match="already running"):
            run_job("nightly", settings, steps=steps())
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    finally:
        if holder.poll() is None:
            holder.kill()
    result = run_job("nightly", settings, steps=steps())
    assert result.status == "drift"
    rows = _rows(settings)
    dead = next(r for r in rows if r["pid"] == holder.pid)
    assert dead["status"] == "failed" and dead["error_class"] == "Abandoned"


@pytest.mark.slow
def test_catalog_job_reconciles_only_the_catalog(env) -> None:
    _, settings = env
    nightly = run_job("nightly", settings, steps=steps())
    catalog = run_job("catalog", settings, steps=steps())
    assert catalog.status in ("clean", "drift")
    data = Path(settings.data_dir)
    assert latest_complete(data).run_id == nightly.snapshot_run, \
        "a catalog-only snapshot is never the base of the nightly chain"
    con = duckdb.connect(str(state_path(data)), read_only=True)
    try:
        objects = {r[0] for r in con.execute(
            "SELECT DISTINCT object FROM drift WHERE run_id = ?",
            [catalog.snapshot_run]).fetchall()}
        scope = con.execute("SELECT scope FROM reconcile_runs WHERE run_id = ?",
                            [catalog.snapshot_run]).fetchall()[0][0]
        resolved = con.execute(
            "SELECT count(*) FROM drift WHERE run_id = ? AND status = 'resolved'",
            [catalog.snapshot_run]).fetchall()[0][0]
    finally:
        con.close()
    assert scope == "catalog" and resolved == 0
    assert objects and objects <= {"Product", "ProductRatePlan", "ProductRatePlanCharge",
                                   "ProductRatePlanChargeTier"}


@pytest.mark.slow
def test_cli_run_exit_codes(env, tmp_path: Path) -> None:
    _, settings = env
    cfg = tmp_path / "recon.toml"
    cfg.write_text(f'[paths]\ndata_dir = "{settings.data_dir}"\n[local]\n'
                   f'database_url = "{settings.local_database_url}"\n[zuora]\n'
                   f'base_url = "{settings.zuora_base_url}"\n')
    e = {**os.environ, "PYTHONPATH": str(REPO), "RECON_ZUORA_CLIENT_SECRET": SECRET}
    cmd = [sys.executable, "-m", "jobs.cli", "--config", str(cfg)]
    out = subprocess.run([*cmd, "run", "nightly", "--fail-on-drift"], capture_output=True,
                         text=True, env=e)
    assert out.returncode == 1, out.stderr
    assert "nightly run nightly-" in out.stdout and SECRET not in out.stdout + out.stderr
    runs_out = subprocess.run([*cmd, "runs"], capture_output=True, text=True, env=e)
    assert runs_out.returncode == 0 and "drift" in runs_out.stdout
    # `recon status` exits 0 when no job is overdue and 1 when one is; the schedules are set so
    # the answer does not depend on the time of day the test runs at ("" disables a job).
    def status(schedule: str) -> tuple[subprocess.CompletedProcess, dict[str, list[str]]]:
        sched = tmp_path / "status.toml"
        sched.write_text(cfg.read_text() + schedule)
        out = subprocess.run([sys.executable, "-m", "jobs.cli", "--config", str(sched), "status"],
                             capture_output=True, text=True, env=e)
        return out, {line.split()[0]: line.split() for line in out.stdout.splitlines()[1:]}

    ok, rows = status('[schedule]\nnightly = "* * * * *"\ncatalog = ""\nfull = ""\n')
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert set(rows) == {"nightly"} and rows["nightly"][-1] == "ok", ok.stdout
    late, rows = status('[schedule]\nnightly = ""\ncatalog = "0 0 1 1 *"\nfull = ""\n'
                        '[jobs]\nmisfire_grace_hours = 0.01\n')
    assert late.returncode == 1, late.stdout + late.stderr
    assert set(rows) == {"catalog"} and rows["catalog"][-1] == "OVERDUE", late.stdout
    assert "never" in rows["catalog"], late.stdout  # no catalog run ever succeeded
    bad = subprocess.run([*cmd, "run", "nightly"], capture_output=True, text=True,
                         env={**e, "RECON_ZUORA_CLIENT_SECRET": "nope"})
    assert bad.returncode == 2 and "failed" in bad.stderr and "nope" not in bad.stderr


def test_result_exit_codes() -> None:
    assert JobResult("r", "nightly", "failed", 1).exit_code == 2
    assert JobResult("r", "nightly", "drift", 1).exit_code == 0
    assert runs.idem_key("nightly", __import__("datetime").date(2026, 10, 25)) == \
        "nightly:2026-10-25"
