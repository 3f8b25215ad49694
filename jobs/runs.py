"""Run history of recon's jobs, in recon's state (table ``job_runs``, declared with its
cross-floor readers in :mod:`core.ledger`).

One row per attempt: a retry is a new row with ``attempt`` n+1 and trigger ``retry``, under the
same idempotency key (job + scheduled date), so "did last night's nightly run succeed?" is one
query and a DST double fire or a second scheduler's tick finds the key taken and records a
``skipped`` row instead of running again.

One run id: a run's id is a snapshot id (UTC time + 4 hex, so runs and snapshots sort together
in time order); its attempts are ``<run>`` and ``<run>.a<N>`` (:func:`core.ledger.attempt_id`),
each also the name of the snapshot and run directory it wrote. :func:`resolve_run` is the one
resolver of a typed run id (``runs show``, ``report --run``, ``repair plan --run``, ``findings
--run``, ``reconcile --run``). Besides the declared jobs, the history holds the demo's runs
(job ``full``, trigger ``demo``) and manual reconciles (job ``reconcile``, trigger ``manual``):
every run that reconciles is in it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
from pathlib import Path
from typing import Any

import polars as pl

from core import ledger
from core.ledger import RunRef, attempt_id, run_of  # noqa: F401 — the jobs floor's names
from core.snapshot import new_run_id as _new_snapshot_id
from core.state import StateDB, open_read_only
from jobs.steps import JOBS as _DECLARED

JOBS = tuple(_DECLARED)  # nightly, catalog, full: declared with their steps (jobs.steps)
MANUAL_JOB = "reconcile"  # `recon extract` + `recon reconcile` by hand
HISTORY_JOBS = (*JOBS, MANUAL_JOB)  # what the history can hold (`recon runs --job`)
TRIGGERS = ("schedule", "manual", "retry", "catch-up", "demo")
STATUSES = ("running", "clean", "drift", "failed", "skipped", "missed")
DONE = ledger.DONE  # a successful run
NEEDS_A_PERSON = ("failed", "missed")  # a latest attempt `recon status` exits 1 on


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


def new_run_id(job: str | None = None) -> str:
    """A new run id: a snapshot id (``20261208T023000123456Z-1a2b``), so a run, its first
    attempt's snapshot and its run directory share it and sort in time order with every
    snapshot. (``job`` is accepted for older callers; the id no longer carries it.)"""
    return _new_snapshot_id()


def start(state: StateDB, run_id: str, job: str, key: str, trigger: str,
          scheduled_for: dt.datetime | None, attempt: int, *, run: str | None = None) -> None:
    """Record attempt ``run_id`` (running) of the job run ``run`` (default: its own run)."""
    state.con.execute(
        "INSERT INTO job_runs (run_id, job, idem_key, trigger, scheduled_for, started_at, "
        "status, attempt, host, pid, run) VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?)",
        [run_id, job, key, trigger, scheduled_for, now_utc(), attempt, socket.gethostname(),
         os.getpid(), run or run_of(run_id)])


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
        "finished_at, status, attempt, error_message, host, pid, run) VALUES "
        "(?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)",
        [run_id, job, key, trigger, scheduled_for, t, t, status, message,
         socket.gethostname(), os.getpid(), run_id])
    return run_id


def record_manual(state: StateDB, run_id: str, status: str, started_at: dt.datetime,
                  counts: dict[str, Any], report_path: str | None = None) -> bool:
    """A reconcile run by hand (``recon reconcile`` on a snapshot from ``recon extract``) in
    the history: job ``reconcile``, trigger ``manual``, its id the snapshot's. Reconciling the
    same snapshot again replaces the row. A snapshot a job attempt produced is already that
    attempt's run: nothing is added (returns False)."""
    owner = state.con.execute("SELECT job FROM job_runs WHERE run_id = ? OR snapshot_run = ?",
                              [run_id, run_id]).fetchall()
    if owner and any(job != MANUAL_JOB for (job,) in owner):
        return False
    state.con.execute(
        "INSERT OR REPLACE INTO job_runs (run_id, job, idem_key, trigger, scheduled_for, "
        "started_at, finished_at, status, attempt, counts, report_path, snapshot_run, host, "
        "pid, run) VALUES (?, ?, ?, 'manual', NULL, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?)",
        [run_id, MANUAL_JOB, manual_key(MANUAL_JOB, started_at.date(), run_id), started_at,
         now_utc(), status, json.dumps(counts, sort_keys=True, default=str), report_path,
         run_id, socket.gethostname(), os.getpid(), run_id])
    return True


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
    """The newest ``limit`` attempts (one row each; ``run`` is the run they belong to)."""
    where = "WHERE job = ?" if job else ""
    return state.con.sql(
        f"SELECT coalesce(run, run_id) AS run, run_id, job, trigger, scheduled_for, started_at, "
        f"finished_at, status, attempt, error_class, error_message, snapshot_run, report_path "
        f"FROM job_runs {where} ORDER BY started_at DESC, run_id DESC LIMIT {int(limit)}",
        params=[job] if job else None).pl()


def attempts_of(state: StateDB, run: str) -> pl.DataFrame:
    """Every attempt of run ``run``, oldest first."""
    return state.con.sql(
        "SELECT coalesce(run, run_id) AS run, run_id, job, trigger, started_at, finished_at, "
        "status, attempt, error_class, error_message, snapshot_run FROM job_runs "
        "WHERE coalesce(run, run_id) = ? ORDER BY started_at, attempt", params=[run]).pl()


def show_run(state: StateDB, run_id: str) -> dict[str, Any] | None:
    """The attempt ``run_id`` resolves to (:func:`resolve_run`), None when the ledger does not
    know it."""
    ref = ledger.resolve_run(state.con, run_id)
    return ref.row if ref is not None else None


def resolve_run(data_dir: Path | str, text: str) -> RunRef:
    """The one resolver of a run id typed by a person (``--run``, ``runs show``): the job
    run's attempt that reconciled (:func:`core.ledger.resolve_run`); a text the ledger does not
    know is taken as a snapshot id, as before runs were recorded (the command reading it then
    says whether it exists). Reads the state without writing or waiting long (a report built
    while the nightly runs)."""
    with open_read_only(data_dir) as con:
        ref = ledger.resolve_run(con, text) if con is not None else None
    return ref or RunRef(text, text, text)


def target_of(data_dir: Path | str, text: str | None) -> str | None:
    """What ``--run TEXT`` reads: the snapshot / run directory of the attempt ``text``
    resolves to (None stays None: the command's own default, the newest run)."""
    return None if text is None else resolve_run(data_dir, text).target


def latest_attempts(state: StateDB) -> dict[str, dict[str, Any]]:
    """Per job, its newest attempt that did something (a ``skipped`` no-op is not one): what
    ``recon status`` shows beside the last success."""
    rows = state.con.sql(
        "SELECT * EXCLUDE (rn) FROM (SELECT coalesce(run, run_id) AS run_, *, row_number() "
        "OVER (PARTITION BY job ORDER BY started_at DESC, run_id DESC) AS rn FROM job_runs "
        "WHERE status <> 'skipped') WHERE rn = 1").pl().to_dicts()
    out = {}
    for r in rows:
        r["run"] = r.pop("run_")
        out[r["job"]] = r
    return out


def last_success(state: StateDB, job: str, *, scheduled_only: bool = False
                 ) -> dict[str, Any] | None:
    """The latest successful attempt of ``job``; ``scheduled_only``: only runs under a
    scheduled key (schedule, catch-up, ``--scheduled``, and their retries) — what decides
    whether a tick was run (a manual run never stands in for a tick)."""
    where = " AND idem_key NOT LIKE '%:manual:%'" if scheduled_only else ""
    rows = state.con.sql(
        "SELECT run_id, coalesce(run, run_id) AS run, scheduled_for, started_at, finished_at, "
        "status, trigger FROM job_runs WHERE job = ? "
        f"AND status IN ('clean', 'drift'){where} ORDER BY finished_at DESC LIMIT 1",
        params=[job]).pl()
    return rows.row(0, named=True) if rows.height else None
