"""Gather everything one run's report shows, read-only, from the files and state recon wrote.

Sources (docs/pipeline.md "Drift output", "Validation", "Repair plans"): the run directory
(``drift.parquet``, ``object_stats.parquet``, ``field_stats.parquet``, ``summary.json``,
``quarantine/``, ``repair-plan.json``), the snapshot's manifest (complete or ``.failed``) and
recon's state (``reconcile_runs``, ``check_results``, and the jobs layer's ``job_runs`` when it
exists). Nothing here writes: a report must be safe to build at any time, even while another
run is going, and on a run that never got as far as reconciling.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from core import ledger
from core.config import Settings
from core.errors import ReconError
from core.inbox import InboxHealth, inbox_backend_kind, read_health
from core.layout import (
    DRIFT_FILE,
    FAILED_SUFFIX,
    FIELD_STATS_FILE,
    MANIFEST,
    OBJECT_STATS_FILE,
    PLAN_FILE,
    SUMMARY_FILE,
    DataLayout,
    run_dir,
)
from core.snapshot import Snapshot, list_snapshots, open_snapshot, snapshots_dir
from core.state import StateUnreadable, open_read_only
from expectations.quarantine import QUARANTINE_SCHEMA, read_quarantine
from expectations.results import RESULT_SCHEMA, results_of
from reconcile import history
from reconcile.acks import ACK_SCHEMA, read_acks
from reconcile.findings import DRIFT_SCHEMA
from reports import commands
from reports.entities import EntityNames, read_names
from reports.errors import ReportError, RunNotFound


@dataclass
class Collected:
    """The raw inputs of one report (frames and dicts as the writers left them)."""

    data_dir: Path
    run_id: str
    snapshot: Snapshot | None  # complete or failed; None when it was deleted or never written
    reconciled: bool  # drift.parquet and summary.json exist for this run
    drift: pl.DataFrame
    object_stats: pl.DataFrame
    field_stats: pl.DataFrame
    summary: dict[str, Any]  # summary.json ({} when not reconciled)
    checks: pl.DataFrame  # check_results of this run (RESULT_SCHEMA)
    quarantine: pl.DataFrame  # QUARANTINE_SCHEMA
    recon_runs: list[dict[str, Any]]  # reconcile_runs rows up to this run, newest last
    last_clean_run: str | None
    snapshots: list[Snapshot]  # every finished snapshot up to this run, oldest first
    job: dict[str, Any] | None  # this run's job_runs row (latest attempt), if the table exists
    jobs: dict[str, dict[str, Any]]  # run_id -> latest job_runs row, for trends
    plan: SavedPlan | None  # the run's saved repair-plan.json (the report never plans itself)
    plan_error: str | None  # why there is no plan, and how to make one
    applies: pl.DataFrame | None  # repair applies of this run (local database), when read
    applies_error: str | None = None
    notes: list[str] = field(default_factory=list)  # what could not be read, and why
    # the event path's health at report time (core.inbox.read_health); None: no inbox here
    inbox_health: InboxHealth | None = None
    # acknowledged findings (reconcile.acks; every stored ack, evaluated by the model)
    acks: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=ACK_SCHEMA))
    # account numbers and product names for the findings' ids (reports.entities)
    names: EntityNames = field(default_factory=EntityNames.empty)


def known_runs(data_dir: Path) -> list[str]:
    """Run ids with a trace on disk (snapshots, complete or failed, and run directories)."""
    ids: set[str] = set()
    root = snapshots_dir(data_dir)
    if root.is_dir():
        for p in root.iterdir():
            if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST).is_file():
                ids.add(p.name.removesuffix(FAILED_SUFFIX))
    runs = DataLayout(data_dir).runs
    if runs.is_dir():
        ids.update(p.name for p in runs.iterdir()
                   if p.is_dir() and not p.name.startswith(".")
                   and ((p / SUMMARY_FILE).is_file() or (p / DRIFT_FILE).is_file()))
    return sorted(ids)


def resolve_run(data_dir: Path, run_id: str | None) -> str:
    """``run_id`` if anything of it exists, else the newest run (failed extracts included: the
    morning report of a night whose extract failed must say so, not show the night before)."""
    runs = known_runs(data_dir)
    if run_id is None:
        if not runs:
            raise RunNotFound(f"no run under {data_dir} (no snapshot, no reconciled run); run "
                              "`recon extract` and `recon reconcile` first")
        return runs[-1]
    if run_id not in runs and not _in_state(data_dir, run_id):
        raise RunNotFound(f"no run {run_id!r} under {data_dir} (no snapshot, run directory or "
                          "state row); `recon report` without --run picks the newest")
    return run_id


def _in_state(data_dir: Path, run_id: str) -> bool:
    with open_state(data_dir) as con:
        if con is None:
            return False
        return history.was_reconciled(con, run_id) or ledger.has_attempt(con, run_id)


@contextlib.contextmanager
def open_state(data_dir: Path) -> Iterator[duckdb.DuckDBPyConnection | None]:
    """recon's state, read-only (None when there is none yet): :func:`core.state.open_read_only`
    with its refusal as a :class:`ReportError`."""
    try:
        with open_read_only(data_dir) as con:
            yield con
    except StateUnreadable as e:
        raise ReportError(str(e)) from e


def _read_parquet(path: Path, schema: dict[str, pl.DataType] | None = None) -> pl.DataFrame:
    if not path.is_file():
        return pl.DataFrame(schema=schema) if schema else pl.DataFrame()
    try:
        return pl.read_parquet(path)
    except Exception as e:  # a truncated file must name itself, not crash anonymously
        raise ReportError(f"{path} cannot be read ({type(e).__name__}: {e}); re-run "
                          "`recon reconcile` for this run") from e


def run_snapshot(data_dir: Path, run_id: str) -> Snapshot | None:
    """The run's snapshot, complete or failed (None when it was deleted or never written)."""
    layout = DataLayout(data_dir)
    for candidate in (layout.snapshot_dir(run_id), layout.failed_snapshot_dir(run_id)):
        if (candidate / MANIFEST).is_file():
            return open_snapshot(candidate)
    return None


def _state_parts(data_dir: Path, run_id: str, trend_runs: int, job_run_id: str | None = None,
                 snapshot_started: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"recon_runs": [], "last_clean": None, "checks": None, "job": None,
                           "jobs": {}, "acks": pl.DataFrame(schema=ACK_SCHEMA)}
    with open_state(data_dir) as con:
        if con is None:
            return out
        # each floor's own reader of its own table (no SQL on another's tables here)
        out["recon_runs"] = history.recent_runs(con, run_id, trend_runs)
        out["last_clean"] = history.last_clean_run(con, run_id)
        out["checks"] = results_of(con, run_id)
        out["acks"] = read_acks(con)
        attempts = ledger.job_runs(con)
        if attempts is not None:
            out["jobs"], out["job"] = _jobs(attempts, run_id, job_run_id, snapshot_started)
    return out


def _jobs(jobs: pl.DataFrame, run_id: str, job_run_id: str | None,
          snapshot_started: str | None) -> tuple[dict[str, dict[str, Any]], dict | None]:
    """The jobs layer's attempts (``job_runs``) by the snapshot run they produced, and this
    run's attempt: the one named ``job_run_id``, else the latest attempt whose
    ``snapshot_run`` (or ``run_id``) is this run, else a still-running attempt that started
    before this run's snapshot (the pipeline writing its report mid-run). Columns the table
    may lack are tolerated."""
    if "run_id" not in jobs.columns:
        return {}, None
    order = [c for c in ("started_at", "attempt") if c in jobs.columns]
    rows = jobs.sort(order, nulls_last=False).to_dicts() if order else jobs.to_dicts()
    by_run: dict[str, dict[str, Any]] = {}
    for row in rows:
        by_run[str(row.get("snapshot_run") or row["run_id"])] = row  # the latest wins
    if job_run_id:
        named = [r for r in rows if r["run_id"] == job_run_id]
        if named:
            by_run[run_id] = named[-1]
            return by_run, named[-1]
    job = by_run.get(run_id)
    if job is None and snapshot_started:
        start = dt.datetime.fromisoformat(snapshot_started.replace("Z", "+00:00")) \
            .astimezone(dt.UTC).replace(tzinfo=None)
        running = [r for r in rows if r.get("status") == "running" and not r.get("snapshot_run")
                   and isinstance(r.get("started_at"), dt.datetime) and r["started_at"] <= start]
        if running:
            job = running[-1]
            by_run[run_id] = job
    return by_run, job


def _inbox_health(settings: Settings, *, read_database: bool
                  ) -> tuple[InboxHealth | None, str | None]:
    """The callout inbox's health through its reader (which never creates one), else why it
    could not be read (the error's class only: a driver message can name hosts). A
    PostgreSQL inbox lives in the local database, which the report contacts only when asked
    to (``read_database``, as for the repair history); the embedded SQLite inbox is one of
    recon's own files and is always read."""
    if inbox_backend_kind(settings) != "sqlite" and not read_database:
        return None, None
    try:
        return read_health(settings), None
    except ReconError as e:
        return None, f"the callout inbox could not be read ({type(e).__name__})"


def saved_plan_hint(run_id: str, settings: Settings | None = None) -> str:
    """What the report says when a reconciled run has no saved plan: how to make one (the
    complete command for this run's data, :mod:`reports.commands`, when ``settings`` given)."""
    cmd = (commands.recon(settings, "repair", "plan", "--run", run_id) if settings is not None
           else f"recon repair plan --run {run_id}")
    return f"no {PLAN_FILE} for this run (run `{cmd}`)"


@dataclass(frozen=True)
class SavedPlan:
    """What the report shows of a saved repair plan (read through the repair floor's reader)."""

    plan_id: str
    run_id: str
    created_at: str  # ISO-8601 UTC, "…Z"
    validation: str
    snapshot_complete: bool
    only: str | None
    operations: int
    summary: dict[str, Any]  # the plan's informational summary (counts, samples)
    not_planned: tuple[dict[str, Any], ...]


def read_saved_plan(path: Path) -> SavedPlan:
    """The saved plan at ``path``, read and validated by the repair floor's own reader (this is
    the one call into it, so a later plan format changes only the repair floor). Raises the
    reader's typed error (a ``ReconError``) on a bad or unknown-version file."""
    from repair.plan import plan_document, read_plan

    doc = plan_document(read_plan(path))  # the typed plan, as the document its writer writes
    return SavedPlan(plan_id=doc["plan_id"], run_id=doc["run_id"], created_at=doc["created_at"],
                     validation=str(doc["validation"]),
                     snapshot_complete=doc["snapshot_complete"], only=doc["only"],
                     operations=len(doc["operations"]), summary=doc["summary"],
                     not_planned=tuple(doc["not_planned"]))


def _plan(data_dir: Path, run_id: str, snapshot: Snapshot | None,
          reconciled: bool, settings: Settings) -> tuple[SavedPlan | None, str | None]:
    """The run's saved repair plan, else why there is none. The report never plans itself:
    what it shows is exactly what ``recon repair apply`` would read."""
    from core.errors import ReconError

    path = run_dir(data_dir, run_id) / PLAN_FILE
    if path.is_file():
        try:
            plan = read_saved_plan(path)
        except (ReconError, OSError, ValueError) as e:
            return None, f"{path} cannot be read ({e})"
        if plan.run_id == run_id:
            return plan, None
    if not reconciled:
        return None, "the run was not reconciled, so there is nothing to repair"
    if snapshot is None or not snapshot.complete:
        return None, "the run's snapshot is not available to plan from"
    return None, saved_plan_hint(run_id, settings)


def _applies(settings: Settings, run_id: str) -> tuple[pl.DataFrame | None, str | None]:
    """Repair applies of this run from the local database's audit (best effort: the report
    must not fail because the local database is down)."""
    try:
        from repair.apply import list_applies

        frame = list_applies(settings)
    except Exception as e:  # noqa: BLE001 - any driver error means "not available"
        return None, f"repair history could not be read ({type(e).__name__})"
    if frame.height and "run_id" in frame.columns:
        frame = frame.filter(pl.col("run_id") == run_id)
    return frame, None


def collect(data_dir: Path | str, run_id: str | None, *, settings: Settings,
            read_applies: bool = False, read_inbox: bool = False,
            job_run_id: str | None = None) -> Collected:
    """Everything the report of ``run_id`` (default: the newest run) needs."""
    data_dir = Path(data_dir)
    rid = resolve_run(data_dir, run_id)
    snap = run_snapshot(data_dir, rid)
    rdir = run_dir(data_dir, rid)
    reconciled = (rdir / DRIFT_FILE).is_file() and (rdir / SUMMARY_FILE).is_file()
    drift = _read_parquet(rdir / DRIFT_FILE, DRIFT_SCHEMA) if reconciled else \
        pl.DataFrame(schema=DRIFT_SCHEMA)
    missing = [c for c in DRIFT_SCHEMA if c not in drift.columns]
    if missing:
        raise ReportError(f"{rdir / DRIFT_FILE} lacks columns {missing}: written by an "
                          "older recon? re-run `recon reconcile --run " + rid + "`")
    summary: dict[str, Any] = {}
    if reconciled:
        try:
            summary = json.loads((rdir / SUMMARY_FILE).read_text())
        except (OSError, ValueError) as e:
            raise ReportError(f"{rdir / SUMMARY_FILE} cannot be read: {e}") from e
    state = _state_parts(data_dir, rid, settings.report_trend_runs, job_run_id,
                         snap.manifest.started_at if snap else None)
    checks = state["checks"] if state["checks"] is not None else pl.DataFrame(schema=RESULT_SCHEMA)
    try:
        quarantine = read_quarantine(data_dir, rid)
    except Exception as e:  # noqa: BLE001
        raise ReportError(f"quarantine files of run {rid} cannot be read: {e}") from e
    snaps = [s for s in list_snapshots(data_dir) if s.run_id <= rid]
    plan, plan_error = _plan(data_dir, rid, snap, reconciled, settings)
    applies, applies_error = _applies(settings, rid) if read_applies else (None, None)
    health, health_note = _inbox_health(settings, read_database=read_applies or read_inbox)
    return Collected(
        data_dir=data_dir, run_id=rid, snapshot=snap, reconciled=reconciled,
        drift=drift.select(list(DRIFT_SCHEMA)),
        object_stats=_read_parquet(rdir / OBJECT_STATS_FILE) if reconciled
        else pl.DataFrame(),
        field_stats=_read_parquet(rdir / FIELD_STATS_FILE) if reconciled
        else pl.DataFrame(),
        summary=summary, checks=checks,
        quarantine=quarantine if quarantine.height else pl.DataFrame(schema=QUARANTINE_SCHEMA),
        recon_runs=state["recon_runs"], last_clean_run=state["last_clean"],
        snapshots=snaps[-settings.report_trend_runs:], job=state["job"], jobs=state["jobs"],
        plan=plan, plan_error=plan_error, applies=applies,
        applies_error=applies_error, inbox_health=health,
        notes=[health_note] if health_note else [], acks=state["acks"],
        names=_names(snap, drift, data_dir, rid))


def _names(snap: Snapshot | None, drift: pl.DataFrame, data_dir: Path,
           run_id: str) -> EntityNames:
    """Names for the findings' ids; a snapshot file that cannot be read is named in a typed
    error (as a truncated drift.parquet is), never a crash."""
    try:
        return read_names(snap, drift)
    except Exception as e:  # noqa: BLE001 - any reader error: name the run and the cause
        raise ReportError(f"snapshot of run {run_id} under {data_dir} cannot be read for "
                          f"account numbers and product names ({type(e).__name__}: {e})") from e
