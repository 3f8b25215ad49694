"""``recon runs [--job J] [--limit N] | runs show RUN`` (the run history) and ``recon status``
(last success per job and whether it is overdue; exit 1 when one is, for monitoring probes).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Any

from core.state import StateDB
from jobs import runs
from jobs.cli.argtypes import LIMIT
from jobs.cli.common import EXIT_ERROR, EXIT_OK
from jobs.cli.common import settings_of as _settings
from jobs.cli.exit_codes import NEEDS_A_PERSON


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
                return EXIT_ERROR
            for k, v in row.items():
                if k == "counts" and v:
                    v = json.dumps(json.loads(v), indent=2, sort_keys=True)
                print(f"{k:>14}: {'' if v is None else v}")
            return EXIT_OK
        frame = runs.list_runs(st, args.limit, args.job)
    if frame.height == 0:
        print("no runs yet")
        return EXIT_OK
    _table(frame, ["run_id", "job", "trigger", "scheduled_for", "started_at", "status",
                   "attempt", "error_class"])
    return EXIT_OK


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
    _event_path_status(settings)
    return NEEDS_A_PERSON if any(r["overdue"] for r in rows) else EXIT_OK


def _event_path_status(settings: Any) -> None:
    """The event path's health (the callout inbox, read without creating it) and what the
    latest nightly said of it (missed callouts, dead-lettered keys): printed only where
    callouts are received. An unreadable inbox is said, never a reason to fail `status`."""
    from core.errors import ReconError
    from core.inbox import read_health
    from core.state import open_read_only
    from reconcile.history import latest_run

    try:
        h = read_health(settings)
    except ReconError as e:
        print(f"\nevent path: the callout inbox could not be read ({type(e).__name__})")
        return
    if h is None:
        return
    oldest = f"{h.oldest_pending_s:.0f}s" if h.oldest_pending_s is not None else "-"
    print(f"\nevent path: queue {h.queue_depth} ({h.running} syncing), oldest pending {oldest}, "
          f"dead letters {h.dead_letters}; last 24 h: {h.events_24h} callouts, {h.syncs_24h} "
          f"syncs ({h.failed_24h} failed), {h.rejected_24h} rejected")
    with open_read_only(settings.data_dir) as con:
        last = latest_run(con) if con is not None else None
    ev = last["summary"].get("event_path") if last else None
    if last and ev is not None:
        print(f"last nightly {last['run_id']}: {ev['missed_callouts']} findings with a "
              f"missed callout ({len(ev['missed_keys'])} keys), {ev['failures']} on "
              f"dead-lettered keys, {ev['held_synced'] + ev['held_in_flight']} held pending "
              "for the event path")


def add_parser(sub: Any) -> None:
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
