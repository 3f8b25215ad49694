"""Run history of recon's jobs, in recon's state (table ``job_runs``, declared with its
cross-floor readers in :mod:`core.ledger`).

One row per attempt: a retry is a new row with ``attempt`` n+1 and trigger ``retry``, under the
same idempotency key (job + scheduled date), so "did last night's nightly run succeed?" is one
query and a DST double fire or a second scheduler's tick finds the key taken and records a
``skipped`` row instead of running again.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import uuid
from typing import Any

import polars as pl

from core import ledger  # noqa: F401 — declares the job_runs table this module writes
from core.state import StateDB
from jobs.steps import JOBS as _DECLARED

JOBS = tuple(_DECLARED)  # nightly, catalog, full: declared with their steps (jobs.steps)
TRIGGERS = ("schedule", "manual", "retry", "catch-up")
STATUSES = ("running", "clean", "drift", "failed", "skipped", "missed")
DONE = ("clean", "drift")  # a successful run


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def idem_key(job: str, day: dt.date) -> str:
    return f"{job}:{day.isoformat()}"


def manual_key(job: str, day: dt.date, run_id: str) -> str:
    """A run without ``--scheduled`` has a key of its own: it never takes the key of the
    day's scheduled (or catch-up) tick, so it never turns that tick into a no-op."""
    return f"{idem_key(job, day)}:manual:{run_id}"


def is_manual_key(key: str) -> bool:
    return ":manual:" in key


def new_run_id(job: str) -> str:
    return f"{job}-{now_utc().strftime('%Y%m%dT%H%M%S%fZ')}-{uuid.uuid4().hex[:4]}"


def start(state: StateDB, run_id: str, job: str, key: str, trigger: str,
          scheduled_for: dt.datetime | None, attempt: int) -> None:
    state.con.execute(
        "INSERT INTO job_runs (run_id, job, idem_key, trigger, scheduled_for, started_at, "
        "status, attempt, host, pid) VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?)",
        [run_id, job, key, trigger, scheduled_for, now_utc(), attempt, socket.gethostname(),
         os.getpid()])


def finish(state: StateDB, run_id: str, status: str, *, error: BaseException | None = None,
           counts: dict[str, Any] | None = None, report_path: str | None = None,
           snapshot_run: str | None = None) -> None:
    state.con.execute(
        "UPDATE job_runs SET status = ?, finished_at = ?, error_class = ?, error_message = ?, "
        "counts = ?, report_path = ?, snapshot_run = ? WHERE run_id = ?",
        [status, now_utc(), type(error).__name__ if error else None,
         str(error)[:2000] if error else None,
         json.dumps(counts, sort_keys=True, default=str) if counts else None, report_path,
         snapshot_run, run_id])


def record(state: StateDB, job: str, key: str, trigger: str, status: str,
           scheduled_for: dt.datetime | None, message: str) -> str:
    """A run that did not run (skipped duplicate tick, missed tick), for the history."""
    run_id = new_run_id(job)
    t = now_utc()
    state.con.execute(
        "INSERT INTO job_runs (run_id, job, idem_key, trigger, scheduled_for, started_at, "
        "finished_at, status, attempt, error_message, host, pid) VALUES "
        "(?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
        [run_id, job, key, trigger, scheduled_for, t, t, status, message,
         socket.gethostname(), os.getpid()])
    return run_id


def key_taken(state: StateDB, key: str) -> dict[str, Any] | None:
    """A successful or running attempt under ``key``, if any."""
    rows = state.con.execute(
        "SELECT run_id, status, started_at FROM job_runs WHERE idem_key = ? AND status IN "
        "('running', 'clean', 'drift') ORDER BY started_at DESC LIMIT 1", [key]).fetchall()
    return dict(zip(("run_id", "status", "started_at"), rows[0], strict=True)) if rows else None


def abandon_running(state: StateDB, job: str) -> int:
    """Attempts left ``running`` by a process that died (we hold the job lock now, so nobody
    else is running this job): recorded as failed."""
    rows = state.con.execute(
        "UPDATE job_runs SET status = 'failed', finished_at = ?, error_class = 'Abandoned', "
        "error_message = 'the process running it died (killed or crashed); its lock was "
        "recovered by the next run' WHERE job = ? AND status = 'running' RETURNING run_id",
        [now_utc(), job]).fetchall()
    return len(rows)


def list_runs(state: StateDB, limit: int = 30, job: str | None = None) -> pl.DataFrame:
    where = "WHERE job = ?" if job else ""
    return state.con.sql(
        f"SELECT run_id, job, trigger, scheduled_for, started_at, finished_at, status, attempt, "
        f"error_class, snapshot_run, report_path FROM job_runs {where} "
        f"ORDER BY started_at DESC LIMIT {int(limit)}", params=[job] if job else None).pl()


def show_run(state: StateDB, run_id: str) -> dict[str, Any] | None:
    rows = state.con.sql("SELECT * FROM job_runs WHERE run_id = ?", params=[run_id]).pl()
    return rows.row(0, named=True) if rows.height else None


def last_success(state: StateDB, job: str, *, scheduled_only: bool = False
                 ) -> dict[str, Any] | None:
    """The latest successful attempt of ``job``; ``scheduled_only``: only runs under a
    scheduled key (schedule, catch-up, ``--scheduled``, and their retries) — what decides
    whether a tick was run (a manual run never stands in for a tick)."""
    where = " AND idem_key NOT LIKE '%:manual:%'" if scheduled_only else ""
    rows = state.con.sql(
        "SELECT run_id, scheduled_for, started_at, finished_at, status FROM job_runs WHERE job = ? "
        f"AND status IN ('clean', 'drift'){where} ORDER BY finished_at DESC LIMIT 1",
        params=[job]).pl()
    return rows.row(0, named=True) if rows.height else None
