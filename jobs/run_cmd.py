"""``recon run``, ``recon runs``, ``recon status``, ``recon scheduler``: the job commands.

Idempotency: ``recon run JOB --scheduled [--date D]`` runs under the job+date key of a tick
(a second one for the same date is a recorded no-op; ``--date`` fills a missed slot by hand);
without ``--scheduled`` a run has a key of its own, so a manual run never makes the day's
scheduled or catch-up tick a no-op.

Exit codes: ``run`` 0 when the job finished (clean or drift; 1 with ``--fail-on-drift`` when
drift was found), 2 when it failed or another run of the job holds the lock (the message names
the holder). ``status`` exits 1 when a job is overdue (for monitoring probes).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from typing import Any

from core.config import Settings, load_settings
from core.state import StateDB
from jobs import runs
from jobs.argtypes import HOURS, LIMIT


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(getattr(args, "config", None))


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from e


class JsonFormatter(logging.Formatter):
    """One JSON object per log line (``--log-json``), for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
               "level": record.levelname.lower(), "logger": record.name,
               "message": record.getMessage()}
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(out)


def setup_logging(args: argparse.Namespace) -> None:
    """Quiet by default (warnings only); ``--log-json`` for structured logs on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    if getattr(args, "log_json", False):
        handler.setFormatter(JsonFormatter())
        level = logging.INFO
    else:
        handler.setFormatter(logging.Formatter("recon: %(levelname)s %(message)s"))
        level = logging.INFO if getattr(args, "progress", False) else logging.WARNING
    root = logging.getLogger("recon")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


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


def cmd_run(args: argparse.Namespace) -> int:
    from jobs.pipeline import run_job

    setup_logging(args)
    settings, request = run_request(args, _settings(args))
    progress = (lambda m: print(f"  {m}", file=sys.stderr, flush=True)) if (
        args.progress or (sys.stderr.isatty() and not args.quiet)) else None
    result = run_job(args.job, settings, progress=progress, **request)
    if not args.quiet or result.status == "failed":
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
        return 2
    return 1 if args.fail_on_drift and result.status == "drift" else 0


def _table(frame: Any, cols: list[str]) -> None:
    rows = [[("" if v is None else str(v)[:19] if isinstance(v, dt.datetime) else str(v))
             for v in r] for r in frame.select(cols).iter_rows()]
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(cols)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(cols, widths, strict=True)))
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))


def cmd_runs(args: argparse.Namespace) -> int:
    settings = _settings(args)
    with StateDB(settings.data_dir) as st:
        if args.runs_command == "show":
            row = runs.show_run(st, args.run)
            if row is None:
                print(f"recon: error: no run {args.run!r} (see `recon runs`)", file=sys.stderr)
                return 2
            for k, v in row.items():
                if k == "counts" and v:
                    v = json.dumps(json.loads(v), indent=2, sort_keys=True)
                print(f"{k:>14}: {'' if v is None else v}")
            return 0
        frame = runs.list_runs(st, args.limit, args.job)
    if frame.height == 0:
        print("no runs yet")
        return 0
    _table(frame, ["run_id", "job", "trigger", "scheduled_for", "started_at", "status",
                   "attempt", "error_class"])
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """The same schedule arithmetic as the scheduler (``jobs.scheduler.describe_schedule``), so
    `recon status` and the scheduler's overdue alerts always agree."""
    from jobs import alerts
    from jobs.scheduler import describe_schedule

    settings = _settings(args)
    rows = describe_schedule(settings)
    print(f"{'JOB':<8} {'SCHEDULE':<14} {'PREVIOUS TICK (UTC)':<20} {'LAST SUCCESS (UTC)':<20} "
          f"{'LAST RUN':<40} STATE")
    for r in rows:
        last = r["last_success"]
        done = last["finished_at"].strftime("%Y-%m-%d %H:%M") if last else "never"
        tick = r["previous_tick_utc"].strftime("%Y-%m-%d %H:%M") if r["previous_tick_utc"] \
            else "-"
        state = "OVERDUE" if r["overdue"] else "ok"
        print(f"{r['job']:<8} {r['cron']:<14} {tick:<20} {done:<20} "
              f"{(last['run_id'] if last else '-'):<40} {state}")
        if r["overdue"] and args.alert:
            alerts.send(settings, alerts.payload(
                "overdue", r["job"], last["run_id"] if last else None, "overdue", {}, None,
                f"no success since the tick of {tick} UTC"))
    return 1 if any(r["overdue"] for r in rows) else 0


def cmd_scheduler(args: argparse.Namespace) -> int:
    from jobs.scheduler import serve

    setup_logging(args)
    return serve(_settings(args))


def add_parsers(sub: Any) -> None:
    run = sub.add_parser("run", help="one complete job: extract → validate → reconcile → "
                         "plan → report (→ apply with repair.auto)")
    run.add_argument("job", nargs="?", default="nightly", choices=runs.JOBS)
    run.add_argument("--date", type=_date,
                     help="the date this run is for (default: today, UTC); with --scheduled "
                     "it fills that date's slot by hand (e.g. a missed night)")
    run.add_argument("--fail-on-drift", action="store_true", help="exit 1 when drift was found")
    run.add_argument("--scheduled", action="store_true",
                     help="this is a scheduled tick (cron, CronJob): a second run for the same "
                     "job and date is a recorded no-op. Without it a run has its own key and "
                     "never takes the slot of the day's scheduled run")
    run.add_argument("--lag-hours", type=HOURS,
                     help="incremental upper bound: now minus this many hours (default: config "
                     "extract.lag_hours, 2)")
    run.add_argument("--log-json", action="store_true", help="structured JSON logs on stderr")
    run.set_defaults(func=cmd_run)

    rs = sub.add_parser("runs", help="run history")
    rs.add_argument("--job", choices=runs.JOBS)
    rs.add_argument("--limit", type=LIMIT, default=30, help="the newest N runs (default 30)")
    rs_sub = rs.add_subparsers(dest="runs_command")
    show = rs_sub.add_parser("show", help="one run in detail")
    show.add_argument("run")
    rs.set_defaults(func=cmd_runs, runs_command=None)
    show.set_defaults(func=cmd_runs)

    st = sub.add_parser("status", help="last success per job and whether it is overdue "
                        "(exit 1 when one is)")
    st.add_argument("--alert", action="store_true", help="send an alert for overdue jobs")
    st.set_defaults(func=cmd_status)

    sch = sub.add_parser("scheduler", help="long-running scheduler (APScheduler, jobs from "
                         "the [schedule] config)")
    sch.add_argument("--log-json", action="store_true", help="structured JSON logs on stderr")
    sch.set_defaults(func=cmd_scheduler)
