"""Typed readers of recon's state, one per owning package, on a read-only connection: the
report reads reconcile runs, check results and the job ledger through them, never with SQL
of its own."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import polars as pl
import pytest

from core import ledger
from core.state import StateDB, StateUnreadable, open_read_only, state_path
from expectations.results import CheckResult, results_frame, results_of, store_results
from reconcile import history

T0 = dt.datetime(2026, 11, 23, 1, 0)


def _run_row(run_id: str, drift: int) -> list:
    return [run_id, T0, "full", T0, T0, 1.5, 6.0, None, drift,
            json.dumps({"drift": drift, "by_status": {}}), "all"]


def test_no_state_file_reads_as_none(tmp_path: Path) -> None:
    with open_read_only(tmp_path) as con:
        assert con is None
    assert not state_path(tmp_path).exists()  # reading never creates the state


def test_a_state_without_the_floors_tables_reads_as_empty(tmp_path: Path) -> None:
    duckdb.connect(str(state_path(tmp_path))).close()  # an empty (very old) state file
    with open_read_only(tmp_path) as con:
        assert con is not None
        assert history.recent_runs(con, "r9", 5) == []
        assert history.last_clean_run(con, "r9") is None
        assert not history.was_reconciled(con, "r1")
        assert results_of(con, "r1") is None
        assert ledger.job_runs(con) is None and not ledger.has_attempt(con, "j1")


def test_the_readers_return_each_floors_rows(tmp_path: Path) -> None:
    with StateDB(tmp_path) as st:
        for rid, drift in (("r1", 0), ("r2", 3), ("r3", 0), ("r4", 2)):
            st.con.execute("INSERT INTO reconcile_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           _run_row(rid, drift))
        st.con.execute(
            "INSERT INTO job_runs (run_id, job, idem_key, trigger, started_at, status, attempt, "
            "snapshot_run) VALUES ('j1', 'nightly', 'nightly:x', 'manual', ?, 'drift', 1, 'r4')",
            [T0])
    store_results(tmp_path, "r2", results_frame([
        CheckResult("r2", "pandera", "s", "Account", "Name", "not_null", outcome="failed",
                    failing_count=2)]))
    with open_read_only(tmp_path) as con:
        assert con is not None
        runs = history.recent_runs(con, "r3", 2)
        assert [r["run_id"] for r in runs] == ["r2", "r3"]  # the last two up to r3, oldest first
        assert runs[0]["summary"] == {"drift": 3, "by_status": {}}  # parsed
        assert runs[0]["findings"] == 3 and runs[0]["as_of"] == T0
        assert history.last_clean_run(con, "r4") == "r3"
        assert history.last_clean_run(con, "r2") == "r1"
        assert history.was_reconciled(con, "r4") and not history.was_reconciled(con, "r5")
        checks = results_of(con, "r2")
        assert checks is not None and checks.height == 1
        assert checks.row(0, named=True)["outcome"] == "failed"
        assert results_of(con, "r1") is not None and results_of(con, "r1").height == 0
        jobs = ledger.job_runs(con)
        assert isinstance(jobs, pl.DataFrame) and jobs["snapshot_run"].to_list() == ["r4"]
        assert ledger.has_attempt(con, "j1") and not ledger.has_attempt(con, "r4")


def test_a_state_that_cannot_be_opened_is_refused_by_name(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    duckdb.connect(str(state_path(tmp_path))).close()

    def refuse(*a: object, **k: object) -> None:
        raise duckdb.IOException("Could not set lock on file")

    monkeypatch.setattr(duckdb, "connect", refuse)
    monkeypatch.setattr("core.state.time.sleep", lambda s: None)
    with pytest.raises(StateUnreadable, match="cannot be read .*IOException"):
        with open_read_only(tmp_path):
            pass
