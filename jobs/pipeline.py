"""``recon run JOB``: one complete job, the same whether cron, a Kubernetes CronJob, the
scheduler or a person started it.

nightly / full: extract (nightly: incremental with the weekly full policy; full: full) →
validate → reconcile → repair plan → report → repair apply (only with ``repair.auto`` and when
every guard passes). catalog: the product catalog only (seed 004's daily refresh).

Around the steps: the job lock (one run per job across processes and hosts), the idempotency
key (job + scheduled date: a second tick for the same date is a recorded no-op), retries with
backoff for transient failures only (Zuora 429/5xx exhaustion, connection errors, a busy state
file), a ``stop`` event checked between steps (SIGTERM finishes or cleanly aborts), the run
history row, and alerts.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import requests

from core.config import Settings
from core.errors import ReconError
from core.snapshot import ExtractBusy
from core.state import StateDB, StateLockTimeout
from extract.client import ZuoraRateLimitError, ZuoraServerError
from jobs import alerts, runs
from jobs.locks import job_lock

log = logging.getLogger("recon.jobs")
# The attempt being run in this thread, for steps that record it (the report's header).
_attempt = threading.local()
Progress = Callable[[str], None]
TRANSIENT = (ZuoraRateLimitError, ZuoraServerError, requests.ConnectionError,
             requests.Timeout, StateLockTimeout, ExtractBusy, ConnectionError, TimeoutError)


class JobAborted(ReconError):
    """The run was asked to stop (SIGTERM/SIGINT) and stopped between two steps."""


@dataclass
class JobResult:
    run_id: str
    job: str
    status: str  # clean | drift | failed | skipped
    attempt: int
    error: BaseException | None = None
    counts: dict[str, Any] = field(default_factory=dict)
    report_path: str | None = None
    snapshot_run: str | None = None

    @property
    def exit_code(self) -> int:
        return 2 if self.status == "failed" else 0


def is_transient(error: BaseException) -> bool:
    """Worth retrying: the cause chain holds a transient error. Validation failures, guard
    refusals and anything about the data itself are not."""
    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, TRANSIENT):
            return True
        e = e.__cause__ or e.__context__
    return False


def run_job(job: str, settings: Settings, *, trigger: str = "manual",
            scheduled_for: dt.datetime | None = None, day: dt.date | None = None,
            stop: threading.Event | None = None, progress: Progress | None = None,
            sleep: Callable[[float], None] = time.sleep,
            steps: Callable[..., dict[str, Any]] | None = None) -> JobResult:
    """Run ``job`` once (with retries). Raises :class:`jobs.locks.JobLocked` when another run
    of the job holds the lock; every other failure is recorded and returned."""
    if job not in runs.JOBS:
        raise ReconError(f"unknown job {job!r}; jobs: {', '.join(runs.JOBS)}")
    stop = stop or threading.Event()
    say = progress or (lambda _m: None)
    when = scheduled_for.replace(tzinfo=None) if scheduled_for else None
    run_id = runs.new_run_id(job)
    date = day or (when.date() if when else runs.now_utc().date())
    # scheduled and catch-up ticks share the job+date key (a duplicate tick is a no-op); a
    # manual run has a key of its own and never takes a tick's
    key = (runs.idem_key(job, date) if trigger in ("schedule", "catch-up")
           else runs.manual_key(job, date, run_id))
    do_steps = steps or run_steps
    with job_lock(settings, job, run_id):
        with StateDB(settings.data_dir) as st:
            if runs.abandon_running(st, job):
                say("recovered the lock of a run that died; recorded it as failed")
            if trigger in ("schedule", "catch-up") and (taken := runs.key_taken(st, key)):
                msg = (f"duplicate tick: {key} already {taken['status']} as run "
                       f"{taken['run_id']}")
                rid = runs.record(st, job, key, trigger, "skipped", when, msg)
                log.info(msg)
                return JobResult(rid, job, "skipped", 0)
        attempt, trig = 1, trigger
        while True:
            with StateDB(settings.data_dir) as st:
                runs.start(st, run_id, job, key, trig, when, attempt)
            try:
                _attempt.run_id = run_id
                out = do_steps(job, settings, stop=stop, progress=say)
            except Exception as e:  # recorded, alerted, maybe retried — never lost
                with StateDB(settings.data_dir) as st:
                    runs.finish(st, run_id, "failed", error=e)
                log.warning("run %s of %s failed (attempt %d): %s: %s", run_id, job, attempt,
                            type(e).__name__, e)
                if is_transient(e) and attempt <= settings.jobs_retries and not stop.is_set():
                    delay = settings.jobs_retry_delay_s * 2 ** (attempt - 1)
                    say(f"transient failure ({type(e).__name__}); retrying in {delay:.0f}s")
                    sleep(delay)
                    attempt, trig, run_id = attempt + 1, "retry", runs.new_run_id(job)
                    continue
                if not isinstance(e, JobAborted):  # a deploy's SIGTERM pages nobody
                    alerts.send(settings, alerts.payload("failed", job, run_id, "failed",
                                                         {"attempt": attempt}, None,
                                                         f"{type(e).__name__}: {e}"[:300]))
                return JobResult(run_id, job, "failed", attempt, error=e)
            status = out["status"]
            with StateDB(settings.data_dir) as st:
                runs.finish(st, run_id, status, counts=out["counts"],
                            report_path=out.get("report_path"),
                            snapshot_run=out.get("snapshot_run"))
            new = int(out["counts"].get("new", 0))
            if status == "drift" and new >= settings.alerts_new_drift_threshold:
                alerts.send(settings, alerts.payload("drift", job, run_id, status, out["counts"],
                                                     out.get("report_path"),
                                                     f"{new} new findings"))
            return JobResult(run_id, job, status, attempt, counts=out["counts"],
                             report_path=out.get("report_path"),
                             snapshot_run=out.get("snapshot_run"))


def _check(stop: threading.Event, step: str) -> None:
    if stop.is_set():
        raise JobAborted(f"stopped before {step} (SIGTERM/SIGINT); the snapshot and state "
                         "written so far are consistent")


def run_steps(job: str, settings: Settings, *, stop: threading.Event, progress: Progress,
              extract_options: Any = None, rules: bool = True,
              through: str = "apply") -> dict[str, Any]:
    """The steps of one attempt. Returns status, counts, report path, snapshot run.
    ``extract_options`` (``ExtractOptions``) tunes the extractor (tests shrink its retries);
    ``rules=False`` skips the business rules and ``through="reconcile"`` stops after the
    reconciliation (tests of the snapshot lineage, which neither the rules, the plan nor the
    report decide)."""
    import polars as pl

    from core.layout import PLAN_FILE
    from extract.extractor import ExtractOptions
    from jobs.lineage import extract_step, validate_recorded
    from reconcile.engine import reconcile_snapshot, resolve_snapshot, run_dir
    from repair.planner import build_plan, write_plan

    _check(stop, "extract")
    data = Path(settings.data_dir)
    scope = "catalog" if job == "catalog" else "all"
    options = extract_options or ExtractOptions()
    if scope == "catalog":
        cat = catalog_extract_options()
        options = replace(options, objects=cat.objects, local_tables=cat.local_tables)
    requested = {"full": "full", "catalog": "full"}.get(job)  # nightly: the lineage policy
    progress(f"extract ({requested or 'by policy'}"
             f"{', catalog only' if scope == 'catalog' else ''})")
    # the shared extract step: base and baseline from the verdicts, volume check before the
    # snapshot is complete, extract.lag_hours honoured (`recon run --lag-hours` sets it)
    manifest = extract_step(settings, requested, scope=scope, options=options,
                            progress=progress)
    snap = resolve_snapshot(data, manifest.run_id)
    _check(stop, "validate")
    progress("validate")
    checks = validate_recorded(snap, data, settings=settings, gx=rules)  # the verdict
    _check(stop, "reconcile")
    progress("reconcile")
    result = reconcile_snapshot(snap, data, grace_hours=settings.reconcile_grace_hours)
    if through == "reconcile":
        return {"status": "drift" if result.open.height else "clean", "report_path": None,
                "counts": {"extract_mode": manifest.mode, **result.summary["by_status"]},
                "snapshot_run": snap.run_id}
    _check(stop, "repair plan")
    progress("repair plan")
    plan = build_plan(data, snap.run_id, local_database_url=settings.local_database_url)
    plan_path = write_plan(plan, run_dir(data, snap.run_id) / PLAN_FILE)
    _check(stop, "report")
    progress("report")
    report_path = _report(settings, snap.run_id)
    counts: dict[str, Any] = {
        "zuora_rows": sum(int(v.get("rows", 0)) for v in manifest.zuora.values()),
        "local_rows": sum(int(v.get("rows", 0)) for v in manifest.local.values()),
        "extract_mode": manifest.mode, "checks_failed": int(
            checks.results.filter(pl.col("outcome") != "passed").height),
        "quarantined": checks.quarantined, **result.summary["by_status"],
        "auto": result.summary["by_action"].get("auto", 0),
        "human": result.summary["by_action"].get("human", 0),
        "repair_operations": len(plan["operations"]),
    }
    if settings.repair_auto and plan["operations"]:
        _check(stop, "repair apply")
        progress("repair apply")
        counts.update(_apply(plan_path, settings))
    status = "drift" if result.open.height else "clean"
    return {"status": status, "counts": counts, "report_path": report_path,
            "snapshot_run": snap.run_id}


def _report(settings: Settings, run_id: str) -> str | None:
    from reports import build_report

    paths = build_report(settings.data_dir, run_id, settings=settings,
                         job_run_id=getattr(_attempt, "run_id", None))
    return str(paths.html)


def _apply(plan_path: Path, settings: Settings) -> dict[str, Any]:
    """Apply the plan when every guard passes; a refusal is recorded, not a failure."""
    from repair.apply import apply_plan
    from repair.guards import RepairRefused

    try:
        res = apply_plan(plan_path, settings, yes=True)
    except RepairRefused as e:
        log.warning("auto repair refused: %s", e)
        return {"repair": "refused", "repair_refusal": str(e)[:500]}
    applied = int(res.counts["applied"].sum()) if res.counts.height else 0
    return {"repair": res.status, "repair_apply_id": res.apply_id, "repair_applied": applied}


def catalog_extract_options() -> Any:
    """The catalog job exports the four catalog objects, their cache tables, and the local
    rate plans that reference plans (D23)."""
    from core.catalog import OBJECTS
    from extract.extractor import ExtractOptions

    specs = [o for o in OBJECTS if o.group == "catalog"]
    return ExtractOptions(objects=tuple(o.name for o in specs),
                          local_tables=[o.table for o in specs] + ["zuora_local_rate_plans"])
