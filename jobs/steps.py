"""The one declared step sequence of recon's jobs, as data.

extract → validate → reconcile → plan → report → apply-if-allowed. ``recon run nightly |
catalog | full`` (through :func:`jobs.pipeline.run_job`), the scheduler, ``recon demo`` (the
``full`` job on the embedded defaults plus the sandbox) and the tests all run this sequence
with :func:`run_steps`; nothing else strings the stages together, so the jobs and the demo
cannot drift apart again (they had: the nightly did not write ``repair-plan.txt``).

A job differs only in what it extracts (:class:`Job`: the requested mode and the scope); the
steps are the same :data:`STEPS`. A step reads what the steps before it left on the
:class:`StepRun` and adds its own results and counts. Heavy imports happen inside the steps,
so importing this module (the CLI's ``--help``, the scheduler) stays cheap.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.config import Settings
from core.errors import ReconError

if TYPE_CHECKING:  # typing only: the steps import their floors lazily (cheap --help)
    from repair.plan import Plan

Progress = Callable[[str], None]
# The job attempt being run in this thread: ``run_id`` (``job_runs.run_id``, the attempt's id:
# the extract step names the snapshot after it, the report's header shows it) and ``run`` (the
# job run's one id). Set by :func:`jobs.pipeline.run_job` for the duration of one attempt;
# None for tests that run the steps alone (the snapshot then gets a new id).
current_attempt = threading.local()
log = logging.getLogger("recon.jobs")


class JobAborted(ReconError):
    """The run was asked to stop (SIGTERM/SIGINT) and stopped between two steps."""


@dataclass
class StepRun:
    """One run of the sequence: its inputs, and what each step left for the next ones."""

    job: Job
    settings: Settings
    progress: Progress
    extract_options: Any = None  # extract.extractor.ExtractOptions (tests shrink its retries)
    force_apply: bool = False  # the demo's own local copy only: past the change-fraction guard
    manifest: Any = None  # core.snapshot.Manifest
    snapshot: Any = None  # core.snapshot.Snapshot
    checks: Any = None  # expectations.validate.ValidationResult
    result: Any = None  # reconcile.engine.ReconcileResult
    plan: Plan | None = None
    plan_path: Path | None = None
    report: Any = None  # reports.build.ReportPaths
    report_path: str | None = None
    applied: Any = None  # repair.apply.ApplyResult, when the apply step applied the plan
    counts: dict[str, Any] = field(default_factory=dict)

    @property
    def data(self) -> Path:
        return Path(self.settings.data_dir)

    def outcome(self) -> dict[str, Any]:
        """What :func:`jobs.pipeline.run_job` records: status (drift when the reconciliation
        left open findings), counts, report path, snapshot run."""
        drift = self.result is not None and self.result.open.height > 0
        return {"status": "drift" if drift else "clean", "counts": dict(self.counts),
                "report_path": self.report_path,
                "snapshot_run": self.snapshot.run_id if self.snapshot is not None else None}


@dataclass(frozen=True)
class Step:
    """One step: ``name`` (how tests and callers refer to it), ``title`` (what the progress
    line and a stop message say), ``run`` (does the work on the :class:`StepRun`), ``allowed``
    (whether it runs at all: only the apply step is conditional)."""

    name: str
    title: str
    run: Callable[[StepRun], None]
    allowed: Callable[[StepRun], bool] = lambda _run: True
    label: Callable[[StepRun], str] | None = None  # a progress line richer than the title


@dataclass(frozen=True)
class Job:
    """A job: what it extracts (``mode``: ``full``, or None for the lineage policy —
    incremental with the weekly full; ``scope``: the whole tenant or the catalog only) and
    the declared steps."""

    name: str
    mode: str | None
    scope: str
    steps: tuple[Step, ...]

    def through(self, step: str) -> Job:
        """This job's sequence up to and including ``step`` (a prefix: tests of what the
        later steps do not decide, e.g. the snapshot lineage, stop after ``reconcile``)."""
        names = [s.name for s in self.steps]
        if step not in names:
            raise ReconError(f"no step {step!r} in the {self.name} job; steps: "
                             f"{', '.join(names)}")
        return replace(self, steps=self.steps[:names.index(step) + 1])


# -- the steps ------------------------------------------------------------------------------
def _extract_label(run: StepRun) -> str:
    return (f"extract ({run.job.mode or 'by policy'}"
            f"{', catalog only' if run.job.scope == 'catalog' else ''})")


def _extract(run: StepRun) -> None:
    """The shared extract step (``jobs.lineage.extract_step``): base and baseline from the
    verdicts, the volume check before the snapshot is complete, ``extract.lag_hours``."""
    from extract.extractor import ExtractOptions
    from jobs.lineage import extract_step
    from reconcile.engine import resolve_snapshot

    options = run.extract_options or ExtractOptions()
    if getattr(current_attempt, "run_id", None):  # one id: the attempt's snapshot is named so
        options = replace(options, run_id=current_attempt.run_id)
    if run.job.scope == "catalog":
        cat = catalog_extract_options()
        options = replace(options, objects=cat.objects, local_tables=cat.local_tables)
    m = extract_step(run.settings, run.job.mode, scope=run.job.scope, options=options,
                     progress=run.progress)
    run.manifest = m
    run.snapshot = resolve_snapshot(run.data, m.run_id)
    run.counts.update(
        zuora_rows=sum(int(v.get("rows", 0)) for v in m.zuora.values()),
        local_rows=sum(int(v.get("rows", 0)) for v in m.local.values()),
        extract_mode=m.mode)


def _validate(run: StepRun) -> None:
    """Contracts, volume and business rules; the verdict is recorded (a failed one stops
    the run: never a base, its marks never current)."""
    import polars as pl

    from jobs.lineage import validate_recorded

    run.checks = validate_recorded(run.snapshot, run.data, settings=run.settings)
    run.counts.update(
        checks_failed=int(run.checks.results.filter(pl.col("outcome") != "passed").height),
        quarantined=run.checks.quarantined)


def _reconcile(run: StepRun) -> None:
    """Reconcile the snapshot with the event path's per-key activity (the callout inbox), so
    that keys a targeted sync wrote after the snapshot, or whose callout is in flight, are
    ``pending`` instead of planned over a fresher local copy (docs/pipeline.md "Two clocks")."""
    from core.inbox import read_activity
    from reconcile.engine import reconcile_snapshot

    run.result = reconcile_snapshot(run.snapshot, run.data,
                                    grace_hours=run.settings.reconcile_grace_hours,
                                    progress=run.progress,
                                    activity=read_activity(run.settings))
    s = run.result.summary
    run.counts.update(**s["by_status"], auto=s["by_action"].get("auto", 0),
                      human=s["by_action"].get("human", 0))


def _plan(run: StepRun) -> None:
    """The repair plan for review: ``repair-plan.json`` and its ``repair-plan.txt`` summary
    (README promises both, whoever runs the job)."""
    from core.layout import PLAN_FILE, PLAN_SUMMARY_FILE, DataLayout
    from repair.plan import write_plan
    from repair.planner import build_plan, summary_text
    from reports.atomic import write_text_atomic

    run.plan = build_plan(run.data, run.snapshot.run_id,
                          local_database_url=run.settings.local_database_url)
    out = DataLayout(run.data).run_dir(run.snapshot.run_id)
    run.plan_path = write_plan(run.plan, out / PLAN_FILE)
    write_text_atomic(out / PLAN_SUMMARY_FILE, summary_text(run.plan) + "\n")
    run.counts["repair_operations"] = len(run.plan.operations)


def _report(run: StepRun) -> None:
    from reports import build_report

    # the nightly reaches the local database anyway: its report shows the event path's
    # health from a PostgreSQL inbox too
    run.report = build_report(run.data, run.snapshot.run_id, settings=run.settings,
                              read_inbox=True,
                              job_run_id=getattr(current_attempt, "run_id", None))
    run.report_path = str(run.report.html)


def _apply_allowed(run: StepRun) -> bool:
    return bool(run.settings.repair_auto and run.plan and run.plan.operations)


def _apply(run: StepRun) -> None:
    """Apply the plan when every guard passes; a refusal is recorded, not a failure."""
    import logging

    from repair.apply import apply_plan
    from repair.guards import RepairRefused

    assert run.plan_path is not None
    try:
        res = apply_plan(run.plan_path, run.settings, yes=True, force=run.force_apply,
                         progress=run.progress)
    except RepairRefused as e:
        logging.getLogger("recon.jobs").warning("auto repair refused: %s", e)
        run.counts.update(repair="refused", repair_refusal=str(e)[:500])
    else:
        run.applied = res
        applied = int(res.counts["applied"].sum()) if res.counts.height else 0
        run.counts.update(repair=res.status, repair_apply_id=res.apply_id,
                          repair_applied=applied)
    _report_outcome(run)


def _report_outcome(run: StepRun) -> None:
    """Write the report again with the auto-apply's outcome (README: the nightly report
    shows it). The first report stays if this one cannot be written: logged, not fatal."""
    import logging

    from core.errors import ReconError
    from reports import build_report

    if run.report is None or run.snapshot is None:
        return
    outcome = {k: v for k, v in run.counts.items() if k.startswith("repair")}
    try:
        run.report = build_report(run.data, run.snapshot.run_id, settings=run.settings,
                                  read_inbox=True, auto_apply=outcome,
                                  job_run_id=getattr(current_attempt, "run_id", None))
    except ReconError as e:
        logging.getLogger("recon.jobs").warning("report not rewritten after the auto-apply "
                                                "(%s: %s)", type(e).__name__, e)


STEPS: tuple[Step, ...] = (
    Step("extract", "extract", _extract, label=_extract_label),
    Step("validate", "validate", _validate),
    Step("reconcile", "reconcile", _reconcile),
    Step("plan", "repair plan", _plan),
    Step("report", "report", _report),
    Step("apply", "repair apply", _apply, allowed=_apply_allowed),
)

# nightly: incremental by the lineage policy (a full export at least every
# extract.full_every_days); full: a full export; catalog: the product catalog only (seed 004's
# daily refresh), always full. The order here is the order `recon run` lists them in.
JOBS: dict[str, Job] = {
    "nightly": Job("nightly", None, "all", STEPS),
    "catalog": Job("catalog", "full", "catalog", STEPS),
    "full": Job("full", "full", "all", STEPS),
}


def job(name: str) -> Job:
    """The declared job ``name``; a typed error naming the jobs otherwise."""
    try:
        return JOBS[name]
    except KeyError:
        raise ReconError(f"unknown job {name!r}; jobs: {', '.join(JOBS)}") from None


def run_steps(job_name: str | Job, settings: Settings, *, stop: threading.Event,
              progress: Progress, extract_options: Any = None, through: str | None = None,
              force_apply: bool = False,
              after: Callable[[str, StepRun], None] | None = None) -> dict[str, Any]:
    """Run one attempt of a job's declared steps; returns :meth:`StepRun.outcome`.

    ``stop`` is checked before each step (SIGTERM finishes the step under way, then aborts
    cleanly with :class:`JobAborted`). ``through`` stops after that step (:meth:`Job.through`).
    ``after(step_name, run)`` is called after each step that ran, so a caller can show
    results as they come (the demo) without a sequence of its own. ``force_apply`` lets the
    apply step past the change-fraction guard (the demo, on its own local copy)."""
    spec = job_name if isinstance(job_name, Job) else job(job_name)
    if through is not None:
        spec = spec.through(through)
    run = StepRun(spec, settings, progress, extract_options=extract_options,
                  force_apply=force_apply)
    for step in spec.steps:
        if not step.allowed(run):
            continue
        if stop.is_set():
            raise JobAborted(f"stopped before {step.title} (SIGTERM/SIGINT); the snapshot and "
                             "state written so far are consistent")
        progress(step.label(run) if step.label else step.title)
        before = dict(run.counts)
        t0 = time.monotonic()
        try:
            step.run(run)
        except Exception as e:
            _step_event(run, step, "failed", time.monotonic() - t0, {}, e)
            raise
        _step_event(run, step, "ok", time.monotonic() - t0,
                    {k: v for k, v in run.counts.items() if before.get(k) != v})
        if after is not None:
            after(step.name, run)
    return run.outcome()


def _step_event(run: StepRun, step: Step, status: str, seconds: float,
                counts: dict[str, Any], error: BaseException | None = None) -> None:
    """One structured event per step, success included (``--log-json`` prints it as one JSON
    object on stderr: run and attempt id, job, step, status, duration, the counts the step
    added; quiet otherwise — INFO on ``recon.jobs``)."""
    attempt = getattr(current_attempt, "run_id", None) or (
        run.snapshot.run_id if run.snapshot is not None else None)
    event = {"event": "step", "run_id": getattr(current_attempt, "run", None) or attempt,
             "attempt_id": attempt, "job": run.job.name, "step": step.name, "status": status,
             "duration_s": round(seconds, 3), "counts": counts}
    if error is not None:
        event["error_class"] = type(error).__name__
        event["error"] = str(error)[:500]
    log.info("step %s %s (%.1fs)%s",
            step.name, status, seconds,
            "; " + ", ".join(f"{k}={v}" for k, v in counts.items()) if counts else "",
            extra={"event": event})


def catalog_extract_options() -> Any:
    """The catalog job exports the four catalog objects, their cache tables, and the local
    rate plans that reference plans (D23)."""
    from core.catalog import OBJECTS
    from extract.extractor import ExtractOptions

    specs = [o for o in OBJECTS if o.group == "catalog"]
    return ExtractOptions(objects=tuple(o.name for o in specs),
                          local_tables=[o.table for o in specs] + ["zuora_local_rate_plans"])
