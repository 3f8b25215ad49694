"""``recon run JOB``: one complete job (:func:`jobs.pipeline.run_job`, the declared steps of
:mod:`jobs.steps`), the same whether cron, a Kubernetes CronJob or a person started it.

Idempotency: ``recon run JOB --scheduled [--date D]`` runs under the job+date key of a tick
(a second one for the same date is a recorded no-op; ``--date`` fills a missed slot by hand);
without ``--scheduled`` a run has a key of its own, so a manual run never makes the day's
scheduled or catch-up tick a no-op.

Exit codes: 0 when the job finished (clean or drift; 1 with ``--fail-on-drift`` when drift was
found), 2 when it failed or another run of the job holds the lock (the message names the
holder).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from core.config import Settings
from jobs import runs
from jobs.cli.argtypes import date
from jobs.cli.common import (
    EXIT_DRIFT,
    EXIT_ERROR,
    EXIT_OK,
    add_fail_on_drift,
    add_json,
    add_lag_hours,
    add_log_json,
    progress_of,
    setup_logging,
)
from jobs.cli.common import settings_of as _settings


def run_request(args: argparse.Namespace, settings: Settings
                ) -> tuple[Settings, dict[str, Any]]:
    """What ``recon run`` asks of :func:`jobs.pipeline.run_job`: the settings (``--lag-hours``
    overrides ``extract.lag_hours`` / ``RECON_EXTRACT_LAG_HOURS``) and the trigger and date
    (``--scheduled``: the job+date key of a tick, ``--date`` choosing the slot; else a manual
    run with a key of its own)."""
    from dataclasses import replace

    if args.lag_hours is not None:
        settings = replace(settings, extract_lag_hours=args.lag_hours)
    return settings, {"trigger": "schedule" if args.scheduled else "manual", "day": args.date}


def run_document(result: Any) -> dict[str, Any]:
    """``recon run --json`` (docs/json/run.schema.json): the run's one id, the attempt that
    finished it, its status, counts, report and snapshot, and the error of a failed run."""
    err = result.error
    return {"run_id": result.run_id, "attempt_id": result.attempt_id or result.run_id,
            "job": result.job, "status": result.status, "attempt": result.attempt,
            "counts": result.counts, "report_path": result.report_path,
            "snapshot_run": result.snapshot_run,
            "error": {"class": type(err).__name__, "message": str(err)[:2000]}
            if err is not None else None}


def cmd_run(args: argparse.Namespace) -> int:
    from jobs.pipeline import run_job

    setup_logging(args)
    settings, request = run_request(args, _settings(args))
    progress = progress_of(args)
    result = run_job(args.job, settings, progress=progress, **request)
    if args.json:
        from jobs.cli.jsonout import emit

        emit("run", run_document(result))
    elif not args.quiet or result.status == "failed":
        c = result.counts
        line = (f"{args.job} run {result.run_id}: {result.status}"
                + (f" (attempt {result.attempt})" if result.attempt > 1 else ""))
        if result.status in ("clean", "drift"):
            line += (f"; {c.get('new', 0):,} new, {c.get('persisting', 0):,} persisting, "
                     f"{c.get('resolved', 0):,} resolved, {c.get('pending', 0):,} pending; "
                     f"{c.get('repair_operations', 0):,} repair operations planned")
        if result.error is not None:
            line += f": {type(result.error).__name__}: {result.error}"
        print(line, file=sys.stderr if result.status == "failed" else sys.stdout)
        if result.report_path and not args.quiet:
            print(f"report: {result.report_path}")
    if result.status == "failed":
        return EXIT_ERROR
    return EXIT_DRIFT if args.fail_on_drift and result.status == "drift" else EXIT_OK


def add_parser(sub: Any) -> None:
    run = sub.add_parser("run", help="one complete job: extract → validate → reconcile → "
                         "plan → report (→ apply with repair.auto)")
    run.add_argument("job", nargs="?", default="nightly", choices=runs.JOBS)
    run.add_argument("--date", type=date,
                     help="the date this run is for (default: today, UTC); with --scheduled "
                     "it fills that date's slot by hand (e.g. a missed night)")
    add_fail_on_drift(run, "exit 1 when drift was found")
    run.add_argument("--scheduled", action="store_true",
                     help="this is a scheduled tick (cron, CronJob): a second run for the same "
                     "job and date is a recorded no-op. Without it a run has its own key and "
                     "never takes the slot of the day's scheduled run")
    add_lag_hours(run)
    add_log_json(run)
    add_json(run, "print the run's outcome as JSON on stdout (docs/json/run.schema.json)")
    run.set_defaults(func=cmd_run)
