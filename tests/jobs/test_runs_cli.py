"""One run id (issue 17): the history's run ids resolve to the attempt that reconciled
(`runs show`), `status` shows the latest attempt beside the last success and exits 1 when it
failed, the JSON outputs keep their contracts, a state file from before the `run` column is
migrated, and `--log-json` gives one event per step, success included. Fast: the history is
written with the jobs floor's own writers, the steps are tiny declared ones."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from pathlib import Path

import duckdb
import pytest

from core.state import MIGRATIONS, StateDB
from jobs import runs
from jobs.cli import main
from jobs.pipeline import run_job
from jobs.steps import Job, Step, StepRun, run_steps
from tests.support.jobs import settings_for
from tests.support.json_schema import check

T0 = dt.datetime(2026, 12, 1, 2, 30)


def _attempt(st: StateDB, run: str, n: int, status: str, at: dt.datetime, *,
             job: str = "nightly", error: Exception | None = None) -> str:
    aid = runs.attempt_id(run, n)
    runs.start(st, aid, job, runs.idem_key(job, at.date()), "schedule" if n == 1 else "retry",
               at, n, run=run)
    runs.finish(st, aid, status, error=error, counts={"new": 3} if status != "failed" else None,
                snapshot_run=aid if status != "failed" else None)
    st.con.execute("UPDATE job_runs SET started_at = ?, finished_at = ? WHERE run_id = ?",
                   [at + dt.timedelta(minutes=n), at + dt.timedelta(minutes=n + 1), aid])
    return aid


@pytest.fixture
def history(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A data dir whose nightly: ran clean (A), failed then drifted on retry (B, B.a2), then
    failed (C, the latest attempt); an older recon's attempt id; no job scheduled (the state
    does not depend on the clock)."""
    data = tmp_path / "data"
    ids = {"A": "20261201T023000000000Z-aaaa", "B": "20261202T023000000000Z-bbbb",
           "C": "20261203T023000000000Z-cccc"}
    with StateDB(data) as st:
        _attempt(st, ids["A"], 1, "clean", T0)
        _attempt(st, ids["B"], 1, "failed", T0 + dt.timedelta(days=1),
                 error=ConnectionError("Zuora 503"))
        _attempt(st, ids["B"], 2, "drift", T0 + dt.timedelta(days=1))
        _attempt(st, ids["C"], 1, "failed", T0 + dt.timedelta(days=2),
                 error=RuntimeError("the local database refused the export"))
        runs.start(st, "nightly-20261101T023000000000Z-old1", "nightly", "nightly:2026-11-01",
                   "schedule", None, 1)
        runs.finish(st, "nightly-20261101T023000000000Z-old1", "clean",
                    snapshot_run="20261101T023000000000Z-snap")
        st.con.execute("UPDATE job_runs SET started_at = ?, finished_at = ? WHERE run_id LIKE "
                       "'nightly-%'", [T0 - dt.timedelta(days=30), T0 - dt.timedelta(days=30)])
    cfg = tmp_path / "recon.toml"
    cfg.write_text(f'[paths]\ndata_dir = "{data}"\n[schedule]\nnightly = ""\ncatalog = ""\n'
                   'full = ""\n')
    return cfg, ids


def _recon(capsys, cfg: Path, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["--config", str(cfg), *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_run_id_resolves_to_the_attempt_that_reconciled(history, capsys) -> None:
    cfg, ids = history
    data = Path(str(cfg.parent / "data"))
    b = ids["B"]
    assert runs.resolve_run(data, b).attempt == f"{b}.a2"  # not the failed first attempt
    assert runs.resolve_run(data, b).target == f"{b}.a2"
    assert runs.resolve_run(data, f"{b}.a2").run == b
    assert runs.resolve_run(data, b).attempt == runs.resolve_run(data, f"{b}.a2").attempt
    old = runs.resolve_run(data, "20261101T023000000000Z-snap")  # an older recon's snapshot
    assert old.attempt == "nightly-20261101T023000000000Z-old1"
    assert runs.resolve_run(data, "nightly-20261101T023000000000Z-old1").target == \
        "20261101T023000000000Z-snap"
    unknown = runs.resolve_run(data, "20260101T000000000000Z-none")
    assert unknown.attempt is None and unknown.target == "20260101T000000000000Z-none"

    code, out, _ = _recon(capsys, cfg, "runs", "show", b, "--json")
    doc = check("runs show", out)
    assert code == 0 and doc["run_id"] == b and doc["attempt"]["attempt_id"] == f"{b}.a2"
    assert [a["status"] for a in doc["attempts"]] == ["failed", "drift"]
    assert doc["attempt"]["counts"] == {"new": 3}
    code, out, _ = _recon(capsys, cfg, "runs", "show", b)
    assert code == 0 and f"attempt_id: {b}.a2" in out and "ConnectionError" in out
    code, _, err = _recon(capsys, cfg, "runs", "show", "no-such-run")
    assert code == 2 and "no run 'no-such-run'" in err

    code, out, _ = _recon(capsys, cfg, "runs", "--json")
    listed = check("runs", out)["runs"]
    assert code == 0 and [r["attempt_id"] for r in listed[:4]] == [
        ids["C"], f"{b}.a2", b, ids["A"]]
    assert {r["run_id"] for r in listed[1:3]} == {b}
    code, out, _ = _recon(capsys, cfg, "runs")
    assert code == 0 and f"{b} (.a2)" in out


def test_status_shows_a_failed_latest_attempt_beside_the_last_success(history, capsys) -> None:
    cfg, ids = history
    code, out, _ = _recon(capsys, cfg, "status")
    assert code == 1, out
    line = next(ln for ln in out.splitlines() if ln.startswith("nightly "))
    assert line.split()[-1] == "FAILED" and ids["C"] in line
    assert f"{ids['B']}" in line, "the last success (B's retry) is beside it"
    assert "RuntimeError: the local database refused the export" in out
    code, out, _ = _recon(capsys, cfg, "status", "--json")
    doc = check("status", out)
    (job,) = doc["jobs"]
    assert code == 1 and doc["exit_code"] == 1 and not doc["ok"]
    assert job["state"] == "FAILED" and job["schedule"] is None and not job["overdue"]
    assert job["latest_attempt"]["attempt_id"] == ids["C"]
    assert job["latest_attempt"]["error_class"] == "RuntimeError"
    assert job["last_success"]["run_id"] == ids["B"]
    assert job["last_success"]["attempt_id"] == f"{ids['B']}.a2"
    # a later success: ok again
    with StateDB(cfg.parent / "data") as st:
        _attempt(st, "20261204T023000000000Z-dddd", 1, "clean", T0 + dt.timedelta(days=3))
    code, out, _ = _recon(capsys, cfg, "status")
    assert code == 0, out
    assert next(ln for ln in out.splitlines() if ln.startswith("nightly ")).endswith("ok")


def test_a_manual_reconcile_is_recorded_once_and_never_over_a_jobs_run(history) -> None:
    cfg, ids = history
    with StateDB(cfg.parent / "data") as st:
        hand = "20261205T000000000000Z-hand"
        for status in ("drift", "clean"):  # reconciled twice: one row, the latest outcome
            assert runs.record_manual(st, hand, status, T0, {"new": 0})
        rows = st.con.execute("SELECT job, trigger, status, run FROM job_runs WHERE run_id = ?",
                              [hand]).fetchall()
        assert rows == [("reconcile", "manual", "clean", hand)]
        # a job attempt's snapshot reconciled again stays the job's run
        assert not runs.record_manual(st, f"{ids['B']}.a2", "drift", T0, {})
        assert st.con.execute("SELECT count(*) FROM job_runs WHERE job = 'reconcile'"
                              ).fetchall() == [(1,)]


def test_a_state_file_from_before_the_run_column_is_migrated(tmp_path: Path) -> None:
    """A version-1 state file whose job_runs lacks ``run``: opening adds it (each old attempt
    its own run) and the resolver finds the old attempt."""
    con = duckdb.connect(str(tmp_path / "state.duckdb"))
    con.execute("CREATE TABLE recon_schema_migrations (version INTEGER NOT NULL, name "
                "VARCHAR(255) NOT NULL, applied_at TIMESTAMP NOT NULL, PRIMARY KEY (version))")
    con.execute("INSERT INTO recon_schema_migrations VALUES (1, 'baseline', now())")
    con.execute("CREATE TABLE job_runs (run_id VARCHAR PRIMARY KEY, job VARCHAR NOT NULL, "
                "idem_key VARCHAR NOT NULL, trigger VARCHAR NOT NULL, scheduled_for TIMESTAMP, "
                "started_at TIMESTAMP NOT NULL, finished_at TIMESTAMP, status VARCHAR NOT NULL, "
                "attempt INTEGER NOT NULL, error_class VARCHAR, error_message VARCHAR, counts "
                "VARCHAR, report_path VARCHAR, snapshot_run VARCHAR, host VARCHAR, pid INTEGER)")
    con.execute("INSERT INTO job_runs (run_id, job, idem_key, trigger, started_at, status, "
                "attempt, snapshot_run) VALUES ('nightly-x', 'nightly', 'k', 'schedule', "
                "TIMESTAMP '2026-11-01', 'clean', 1, '20261101T000000000000Z-abcd')")
    con.close()
    with StateDB(tmp_path) as st:
        assert st.schema_version() == MIGRATIONS[-1].version >= 2
        assert st.con.execute("SELECT run FROM job_runs").fetchall() == [("nightly-x",)]
        assert runs.show_run(st, "20261101T000000000000Z-abcd")["run_id"] == "nightly-x"
        assert runs.list_runs(st)["run"].to_list() == ["nightly-x"]


def _tiny_job() -> Job:
    """Two declared steps that only count: the step events come from run_steps itself."""
    def extract(run: StepRun) -> None:
        run.counts.update(zuora_rows=7, local_rows=6)

    def reconcile(run: StepRun) -> None:
        run.counts.update(new=1)

    return Job("nightly", None, "all", (Step("extract", "extract", extract),
                                        Step("reconcile", "reconcile", reconcile)))


def test_log_json_emits_one_event_per_step_and_the_run_on_success(tmp_path: Path,
                                                                 capsys) -> None:
    import argparse

    from jobs.cli.common import setup_logging

    setup_logging(argparse.Namespace(log_json=True))
    try:
        def steps(job: str, settings, **kw):  # noqa: ANN001, ANN202 — run_job's steps
            return run_steps(_tiny_job(), settings, **kw)

        result = run_job("nightly", settings_for(tmp_path), steps=steps,
                         stop=threading.Event())
    finally:
        logging.getLogger("recon").handlers[:] = []
    assert result.status == "clean" and result.attempt_id == result.run_id
    events = [json.loads(line) for line in capsys.readouterr().err.splitlines()
              if line.startswith("{")]
    steps_ = [e for e in events if e.get("event") == "step"]
    assert [(e["step"], e["status"]) for e in steps_] == [("extract", "ok"), ("reconcile", "ok")]
    assert all(e["run_id"] == result.run_id and e["attempt_id"] == result.run_id
               and e["job"] == "nightly" and e["duration_s"] >= 0 for e in steps_)
    assert steps_[0]["counts"] == {"zuora_rows": 7, "local_rows": 6}
    assert steps_[1]["counts"] == {"new": 1}
    (end,) = [e for e in events if e.get("event") == "run"]
    assert end["status"] == "clean" and end["run_id"] == result.run_id


def test_scheduler_lines_for_a_terminal_and_its_catch_ups_are_logged(tmp_path: Path,
                                                                      caplog) -> None:
    """What `recon scheduler` prints on a terminal: each job's next tick and state, then the
    catch-up it runs (also logged at WARNING, so a log reader sees it too)."""
    from jobs.pipeline import JobResult
    from jobs.scheduler import build_scheduler, schedule_lines

    settings = settings_for(tmp_path)  # only the nightly, 30 2 * * * UTC
    now = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)
    (line,) = schedule_lines(settings, now=now)
    assert line.startswith("nightly: 30 2 * * * (UTC); next tick 2026-12-03T02:30:00+00:00")
    assert "never succeeded" in line and line.endswith("OVERDUE")
    said: list[str] = []
    with caplog.at_level(logging.WARNING, logger="recon.scheduler"):
        sched = build_scheduler(settings, stop=threading.Event(), announce=said.append,
                                runner=lambda *a, **k: JobResult("r", "nightly", "clean", 1))
    assert len(said) == 1 and said[0].startswith("nightly: no success since its tick")
    assert "catching up once now" in said[0] and "not replayed" in said[0]
    assert said[0] in caplog.text
    assert sched.get_job("catch-up") is not None


def test_findings_options_before_ack_are_refused_not_dropped(tmp_path: Path, capsys,
                                                             monkeypatch) -> None:
    """`findings --run X ack …` would put X on the listing: argparse lets the sub-command's
    own --run default overwrite it, so the ack would silently ignore the run named. It is
    refused with where the option belongs; after the sub-command it is the ack's."""
    monkeypatch.setenv("RECON_DATA_DIR", str(tmp_path))
    code = main(["findings", "--run", "R1", "ack", "abcdef12", "--note", "known"])
    err = capsys.readouterr().err
    assert code == 2 and "--run before `ack` belong to the listing" in err, err
    code = main(["findings", "--rule", "D11", "unack", "abcdef12"])
    assert code == 2 and "--rule before `unack`" in capsys.readouterr().err
