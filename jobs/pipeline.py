"""``recon run JOB``: one complete job, the same whether cron, a Kubernetes CronJob, the
scheduler or a person started it.

The steps are the one declared sequence (:mod:`jobs.steps`): extract (nightly: incremental
with the weekly full policy; full and catalog: full; catalog: the product catalog only) →
validate → reconcile → repair plan → report → repair apply (only with ``repair.auto`` and when
every guard passes).

Around the steps: the job lock (one run per job across processes and hosts), the idempotency
key (job + scheduled date: a second tick for the same date is a recorded no-op), retries with
backoff (tenacity) for transient failures only — errors whose class is marked
:class:`core.errors.TransientError` anywhere in the cause chain (Zuora 429/5xx exhaustion,
dropped connections, a busy state file or data directory) — a ``stop`` event checked between
steps (SIGTERM finishes or cleanly aborts), the run history row, and alerts.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import tenacity

from core.config import Settings
from core.errors import ReconError, is_transient
from core.state import StateDB
from jobs import alerts, runs
from jobs.locks import job_lock
from jobs.steps import (  # noqa: F401 — re-exported: callers know them as jobs.pipeline's
    JobAborted,
    Progress,
    catalog_extract_options,
    current_attempt,
    run_steps,
)

log = logging.getLogger("recon.jobs")


@dataclass
class JobResult:
    """What one ``run_job`` did. ``run_id`` is the run's one id (what a person types);
    ``attempt_id`` the attempt that finished it (``<run_id>`` or ``<run_id>.a<N>``, also its
    snapshot's name)."""

    run_id: str
    job: str
    status: str  # clean | drift | failed | skipped
    attempt: int
    error: BaseException | None = None
    counts: dict[str, Any] = field(default_factory=dict)
    report_path: str | None = None
    snapshot_run: str | None = None
    attempt_id: str | None = None

    @property
    def exit_code(self) -> int:
        return 2 if self.status == "failed" else 0


@dataclass
class _Attempt:
    """The attempt under way: a retry is a new history row (attempt id ``<run>.a<N>``, trigger
    ``retry``, attempt n+1) under the same idempotency key and run."""

    run_id: str  # this attempt's id (= its snapshot's and run directory's name)
    trigger: str
    number: int = 1
    # what the steps raised (recorded in the history): only that is retried, alerted and
    # returned; a failure of the bookkeeping itself (the state file) propagates, as before
    step_error: BaseException | None = None


class _stop_requested(tenacity.stop.stop_base):  # noqa: N801 — tenacity's naming
    """tenacity stop condition: no retry once the run was asked to stop."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return self.stop.is_set()


def _retain(settings: Settings, say: Progress) -> None:
    """``snapshots.keep_days``: prune old snapshots after a run that finished (never fails
    the run: a prune that cannot run is logged and tried again after the next one)."""
    if settings.snapshots_keep_days <= 0:
        return
    from jobs.retention import prune_snapshots

    try:
        res = prune_snapshots(settings)
    except Exception as e:  # noqa: BLE001 — retention must not fail the night's run
        log.warning("snapshot prune failed: %s: %s", type(e).__name__, e)
        return
    if res.removed:
        msg = (f"pruned {len(res.removed)} snapshot(s) older than "
               f"{res.keep_days:g} days ({res.bytes_freed / 1e6:.1f} MB): "
               + ", ".join(i.run_id for i in res.removed))
        say(msg)
        log.info(msg)


def run_job(job: str, settings: Settings, *, trigger: str = "manual",
            scheduled_for: dt.datetime | None = None, day: dt.date | None = None,
            stop: threading.Event | None = None, progress: Progress | None = None,
            sleep: Callable[[float], None] = time.sleep,
            steps: Callable[..., dict[str, Any]] | None = None) -> JobResult:
    """Run ``job`` once (with retries). Raises :class:`jobs.locks.JobLocked` when another run
    of the job holds the lock; every other failure is recorded and returned. ``trigger``
    ``demo``: ``recon demo``'s run of the ``full`` steps (a manual run, labelled so)."""
    if job not in runs.JOBS:
        raise ReconError(f"unknown job {job!r}; jobs: {', '.join(runs.JOBS)}")
    stop = stop or threading.Event()
    say = progress or (lambda _m: None)
    when = scheduled_for.replace(tzinfo=None) if scheduled_for else None
    run_id = runs.new_run_id()  # the run's one id; attempt 1 (and its snapshot) is named so
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
                return JobResult(rid, job, "skipped", 0, attempt_id=rid)
        attempt = _Attempt(run_id, trigger)

        def one_attempt() -> dict[str, Any]:
            with StateDB(settings.data_dir) as st:
                runs.start(st, attempt.run_id, job, key, attempt.trigger, when, attempt.number,
                           run=run_id)
            try:
                # the steps name the snapshot after the attempt, the report shows it
                current_attempt.run_id, current_attempt.run = attempt.run_id, run_id
                return do_steps(job, settings, stop=stop, progress=say)
            except Exception as e:  # recorded, alerted, maybe retried — never lost
                attempt.step_error = e
                with StateDB(settings.data_dir) as st:
                    runs.finish(st, attempt.run_id, "failed", error=e)
                log.warning("run %s of %s failed (attempt %d): %s: %s", attempt.run_id, job,
                            attempt.number, type(e).__name__, e)
                raise
            finally:
                current_attempt.run_id = current_attempt.run = None

        def next_attempt(state: tenacity.RetryCallState) -> None:
            e = state.outcome.exception() if state.outcome else None
            say(f"transient failure ({type(e).__name__}); retrying in "
                f"{state.upcoming_sleep:.0f}s")
            attempt.number += 1
            attempt.trigger, attempt.run_id = "retry", runs.attempt_id(run_id, attempt.number)

        retrying = tenacity.Retrying(
            # jobs.retries extra attempts, each after jobs.retry_delay_s · 2^(n-1) seconds
            stop=tenacity.stop_after_attempt(settings.jobs_retries + 1) | _stop_requested(stop),
            wait=tenacity.wait_exponential(multiplier=settings.jobs_retry_delay_s, exp_base=2),
            retry=tenacity.retry_if_exception(
                lambda e: e is attempt.step_error and is_transient(e)), sleep=sleep,
            before_sleep=next_attempt, reraise=True)
        try:
            out = retrying(one_attempt)
        except Exception as e:  # not transient, retries exhausted, or stopped
            if e is not attempt.step_error:
                raise
            if not isinstance(e, JobAborted):  # a deploy's SIGTERM pages nobody
                alerts.send(settings, alerts.payload("failed", job, run_id, "failed",
                                                     {"attempt": attempt.number}, None,
                                                     f"{type(e).__name__}: {e}"[:300]))
            _run_event(job, run_id, attempt.run_id, attempt.number, "failed", {}, e)
            return JobResult(run_id, job, "failed", attempt.number, error=e,
                             attempt_id=attempt.run_id)
        status = out["status"]
        with StateDB(settings.data_dir) as st:
            runs.finish(st, attempt.run_id, status, counts=out["counts"],
                        report_path=out.get("report_path"),
                        snapshot_run=out.get("snapshot_run"))
        _run_event(job, run_id, attempt.run_id, attempt.number, status, out["counts"])
        _retain(settings, say)
        # new findings and lapsed acknowledgements alert; acknowledged findings never do
        alerts.drift(settings, job, run_id, status, out["counts"], out.get("report_path"),
                     out.get("snapshot_run"))
        return JobResult(run_id, job, status, attempt.number, counts=out["counts"],
                         report_path=out.get("report_path"),
                         snapshot_run=out.get("snapshot_run"), attempt_id=attempt.run_id)


def _run_event(job: str, run_id: str, attempt_id: str, number: int, status: str,
               counts: dict[str, Any], error: BaseException | None = None) -> None:
    """The run's end as one structured event (``--log-json``), after its steps' events."""
    event: dict[str, Any] = {"event": "run", "run_id": run_id, "attempt_id": attempt_id,
                             "job": job, "attempt": number, "status": status,
                             "counts": counts}
    if error is not None:
        event.update(error_class=type(error).__name__, error=str(error)[:500])
    log.info("run %s of %s: %s (attempt %d)", run_id, job, status, number,
             extra={"event": event})
