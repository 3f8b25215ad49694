"""`recon run`, second half (split from test_pipeline.py so the two xdist workers share the
work): the job lock and its recovery after kill -9, the catalog-only job, and the CLI's exit
codes for `run`, `runs` and `status`."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from core.snapshot import latest_complete
from core.state import state_path
from jobs import runs
from jobs.cli import main
from jobs.locks import JobLocked
from jobs.pipeline import JobResult, run_job
from tests.support.json_schema import check
from tests.support.pipeline import SECRET, job_run_rows, steps

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.postgres


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
    rows = job_run_rows(settings)
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
def test_cli_run_exit_codes(env, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                            monkeypatch: pytest.MonkeyPatch) -> None:
    """`run`, `runs` and `status` through the CLI's entry point (in this process: the same
    ``main`` the console script calls, without paying a Python start-up per command); the last
    command runs as a real process, so the exit code is checked across a process boundary too."""
    _, settings = env
    cfg = tmp_path / "recon.toml"
    cfg.write_text(f'[paths]\ndata_dir = "{settings.data_dir}"\n[local]\n'
                   f'database_url = "{settings.local_database_url}"\n[zuora]\n'
                   f'base_url = "{settings.zuora_base_url}"\n')
    monkeypatch.setenv("RECON_ZUORA_CLIENT_SECRET", SECRET)

    def recon(*argv: str, config: Path = cfg) -> tuple[int, str, str]:
        code = main(["--config", str(config), *argv])
        out = capsys.readouterr()
        return code, out.out, out.err

    try:
        code, out, err = recon("run", "nightly", "--fail-on-drift", "--json", "--log-json")
    finally:
        logging.getLogger("recon").handlers[:] = []  # --log-json's handler holds capsys' stderr
    assert code == 1, err
    done = check("run", out)  # the run's outcome, as its contract says
    assert done["status"] == "drift" and done["attempt_id"] == done["run_id"] == \
        done["snapshot_run"] and SECRET not in out + err
    assert (settings.data_dir / "snapshots" / done["run_id"]).is_dir(), "one id: the snapshot"
    # --log-json: one event per step, success included, then the run's
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    steps_ = [(e["step"], e["status"]) for e in events if e.get("event") == "step"]
    assert steps_ == [(s, "ok") for s in ("extract", "validate", "reconcile", "plan", "report")]
    assert all(e["run_id"] == done["run_id"] for e in events if "run_id" in e)
    assert next(e for e in events if e.get("step") == "reconcile")["counts"]["new"] > 0
    assert [e["status"] for e in events if e.get("event") == "run"] == ["drift"]
    code, out, _ = recon("runs")
    assert code == 0 and "drift" in out and done["run_id"] in out
    # `recon status` exits 0 when no job is overdue and 1 when one is; the schedules are set so
    # the answer does not depend on the time of day the test runs at ("" disables a job).
    def status(schedule: str) -> tuple[int, str, dict[str, list[str]]]:
        sched = tmp_path / "status.toml"
        sched.write_text(cfg.read_text() + schedule)
        code, out, err = recon("status", config=sched)
        return code, out + err, {line.split()[0]: line.split()
                                 for line in out.splitlines()[1:] if line[:1].strip()}

    code, text, rows = status('[schedule]\nnightly = "* * * * *"\ncatalog = ""\nfull = ""\n')
    assert code == 0, text
    assert set(rows) == {"nightly"} and rows["nightly"][-1] == "ok", text
    code, text, rows = status('[schedule]\nnightly = ""\ncatalog = "0 0 1 1 *"\nfull = ""\n'
                              '[jobs]\nmisfire_grace_hours = 0.01\n')
    assert code == 1, text
    assert set(rows) == {"catalog", "nightly"}, text  # nightly: not scheduled, has history
    assert rows["catalog"][-1] == "OVERDUE" and rows["nightly"][-1] == "ok", text
    assert "never" in rows["catalog"], text  # no catalog run ever succeeded
    e = {**os.environ, "PYTHONPATH": str(REPO), "RECON_ZUORA_CLIENT_SECRET": "nope"}
    bad = subprocess.run([sys.executable, "-m", "jobs.cli", "--config", str(cfg), "run",
                          "nightly"], capture_output=True, text=True, env=e)
    assert bad.returncode == 2 and "failed" in bad.stderr and "nope" not in bad.stderr


def test_result_exit_codes() -> None:
    assert JobResult("r", "nightly", "failed", 1).exit_code == 2
    assert JobResult("r", "nightly", "drift", 1).exit_code == 0
    assert runs.idem_key("nightly", __import__("datetime").date(2026, 10, 25)) == \
        "nightly:2026-10-25"
