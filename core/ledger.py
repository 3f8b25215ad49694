"""The run ledger: one row per job attempt, table ``job_runs`` in recon's state.

Only the jobs floor writes it (``jobs.runs``: start, finish, skipped and missed ticks), but the
report of any run shows the attempt that produced it (trigger, status, duration), and the
report sits below the jobs floor. So the table is declared here, in the shared base, with the
typed readers the lower floors use; nobody above core reads it with SQL of its own.

One row per attempt: a retry is a new row with ``attempt`` n+1 and trigger ``retry``, under the
same idempotency key (job + scheduled date).

One run id (issue 17): a job run has one id, ``run``; its attempts are ``<run>`` (attempt 1)
and ``<run>.a<N>``, and an attempt's id is also the name of the snapshot it extracted and of
its run directory (``DATA/snapshots/<id>``, ``DATA/runs/<id>``). :func:`resolve_run` turns
whatever a person pastes — the run id, an attempt id, a snapshot id, or an attempt id of an
older recon (``nightly-…``) — into the attempt that reconciled; every command that takes
``--run`` asks it, so they cannot disagree.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, TypedDict

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
  pid            INTEGER,
  run            VARCHAR               -- the job run (shared by its attempts; state migration 2)
)""")

DONE = ("clean", "drift")  # an attempt that reconciled
_ATTEMPT_SUFFIX = re.compile(r"\.a([0-9]+)$")


def attempt_id(run: str, number: int) -> str:
    """The id of attempt ``number`` of run ``run`` (and of its snapshot and run directory):
    ``run`` itself for the first attempt, ``<run>.a<N>`` for a retry. Ids stay in time order:
    a retry sorts after its first attempt."""
    return run if number <= 1 else f"{run}.a{number}"


def run_of(attempt: str) -> str:
    """The run an attempt id belongs to (``R.a2`` → ``R``; anything else is its own run)."""
    return _ATTEMPT_SUFFIX.sub("", attempt)


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
    run: str | None  # the job run (NULL only in rows written before state migration 2)


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


@dataclass(frozen=True)
class RunRef:
    """What a run id typed by a person resolves to.

    ``run``: the job run's id (what every command accepts and prints); ``attempt``: the
    ``job_runs`` row chosen — the latest attempt that reconciled, else the latest attempt —
    (None: the ledger has no row, e.g. an old snapshot reconciled by hand before runs were
    recorded); ``target``: the snapshot / run directory that attempt reconciled or would
    have (``DATA/runs/<target>``), what ``report``, ``repair plan``, ``reconcile`` and
    ``findings`` read."""

    asked: str
    run: str
    target: str
    attempt: str | None = None
    row: dict[str, Any] | None = None


def _pick(rows: list[dict[str, Any]]) -> dict[str, Any]:
    done = [r for r in rows if r["status"] in DONE]
    return (done or rows)[-1]


def resolve_run(con: duckdb.DuckDBPyConnection, text: str) -> RunRef | None:
    """The attempt ``text`` names, in this order: a run id (its attempt that reconciled, else
    its latest), an attempt id (new ``<run>.a<N>`` or an older recon's ``nightly-…``), a
    snapshot id an attempt produced. None when the ledger does not know it (the caller then
    takes ``text`` as a snapshot id, as before). ``con``: the state, read-only or not."""
    if JOB_RUNS not in table_names(con):
        return None
    cols = {r[0] for r in con.sql("DESCRIBE job_runs").fetchall()}
    run_col = "coalesce(run, run_id)" if "run" in cols else "run_id"
    for where in (f"{run_col} = $t", "run_id = $t", "snapshot_run = $t"):
        rows = con.sql(f"SELECT *, {run_col} AS run_ FROM job_runs WHERE {where} "
                       "ORDER BY started_at, attempt", params={"t": text}).pl().to_dicts()
        if rows:
            row = _pick(rows) if where.startswith(run_col) else rows[-1]
            run = row.pop("run_")
            row["run"] = run
            return RunRef(text, run, row.get("snapshot_run") or row["run_id"], row["run_id"],
                          row)
    return None
