"""The run ledger: one row per job attempt, table ``job_runs`` in recon's state.

Only the jobs floor writes it (``jobs.runs``: start, finish, skipped and missed ticks), but the
report of any run shows the attempt that produced it (trigger, status, duration), and the
report sits below the jobs floor. So the table is declared here, in the shared base, with the
typed readers the lower floors use; nobody above core reads it with SQL of its own.

One row per attempt: a retry is a new row with ``attempt`` n+1 and trigger ``retry``, under the
same idempotency key (job + scheduled date).
"""

from __future__ import annotations

import datetime as dt
from typing import TypedDict

import duckdb
import polars as pl

from core.state import register_table, table_names

JOB_RUNS = "job_runs"

register_table(JOB_RUNS, """
CREATE TABLE IF NOT EXISTS job_runs (
  run_id         VARCHAR PRIMARY KEY,  -- this attempt
  job            VARCHAR NOT NULL,     -- nightly | catalog | full
  idem_key       VARCHAR NOT NULL,     -- job + scheduled date: one successful run per key
  trigger        VARCHAR NOT NULL,     -- schedule | manual | retry | catch-up
  scheduled_for  TIMESTAMP,            -- UTC tick this run is for (NULL: manual, no date)
  started_at     TIMESTAMP NOT NULL,   -- UTC
  finished_at    TIMESTAMP,
  status         VARCHAR NOT NULL,     -- running | clean | drift | failed | skipped | missed
  attempt        INTEGER NOT NULL,
  error_class    VARCHAR,
  error_message  VARCHAR,
  counts         VARCHAR,              -- JSON: rows, findings by status/action, repairs, …
  report_path    VARCHAR,
  snapshot_run   VARCHAR,              -- the snapshot (and reconcile run) it produced
  host           VARCHAR,
  pid            INTEGER
)""")


class JobRunRow(TypedDict):
    """One ``job_runs`` row as the readers return it."""

    run_id: str
    job: str
    idem_key: str
    trigger: str
    scheduled_for: dt.datetime | None
    started_at: dt.datetime
    finished_at: dt.datetime | None
    status: str
    attempt: int
    error_class: str | None
    error_message: str | None
    counts: str | None  # JSON
    report_path: str | None
    snapshot_run: str | None
    host: str | None
    pid: int | None


def job_runs(con: duckdb.DuckDBPyConnection) -> pl.DataFrame | None:
    """Every attempt as stored (rows of :class:`JobRunRow`); None when the state has no
    ledger yet (no job ever ran there). ``con``: :func:`core.state.open_read_only`'s."""
    if JOB_RUNS not in table_names(con):
        return None
    return con.sql("SELECT * FROM job_runs").pl()


def has_attempt(con: duckdb.DuckDBPyConnection, run_id: str) -> bool:
    """Whether an attempt ``run_id`` is in the ledger."""
    return JOB_RUNS in table_names(con) and bool(con.sql(
        "SELECT count(*) FROM job_runs WHERE run_id = $r", params={"r": run_id}
    ).fetchall()[0][0])
