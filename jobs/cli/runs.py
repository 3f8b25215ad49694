"""``recon runs [--job J] [--limit N] [--json] | runs show RUN [--json]`` (the run history) and
``recon status [--alert] [--json]`` (per job: the latest attempt beside the last success, and
whether the job is overdue; exit 1 when a latest attempt failed or a job is overdue, for
monitoring probes).

A run is typed by its one id (:func:`jobs.runs.resolve_run`): the job run's id, one of its
attempts' ids (``<run>.a<N>``), a snapshot id, or an attempt id of an older recon.
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
from jobs.cli.common import EXIT_ERROR, EXIT_OK, add_json
from jobs.cli.common import settings_of as _settings
from jobs.cli.exit_codes import NEEDS_A_PERSON


def _iso(v: Any) -> Any:
    """Timestamps in JSON: ISO 8601, UTC (the history stores naive UTC)."""
    if isinstance(v, dt.datetime):
        return (v if v.tzinfo else v.replace(tzinfo=dt.UTC)).isoformat().replace("+00:00", "Z")
    return v


def _attempt_doc(row: dict[str, Any]) -> dict[str, Any]:
    """One attempt as the JSON contracts show it: ``run_id`` the run, ``attempt_id`` the row."""
    counts = row.get("counts")
    out = {"run_id": row.get("run") or row["run_id"], "attempt_id": row["run_id"]}
    for k in ("job", "trigger", "attempt", "status", "scheduled_for", "started_at",
              "finished_at", "error_class", "error_message", "snapshot_run", "report_path",
              "host", "pid"):
        if k in row:
            out[k] = _iso(row[k])
    if "counts" in row:
        out["counts"] = json.loads(counts) if isinstance(counts, str) and counts else {}
    return out


def _table(rows: list[list[str]], cols: list[str]) -> None:
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(cols)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip())
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def _cell(v: Any) -> str:
    return "" if v is None else str(v)[:16] if isinstance(v, dt.datetime) else str(v)


def cmd_runs(args: argparse.Namespace) -> int:
    from jobs.cli.jsonout import emit

    settings = _settings(args)
    if args.runs_command == "show":
        return _show(args, settings)
    with StateDB(settings.data_dir) as st:
        frame = runs.list_runs(st, args.limit, args.job)
    if args.json:
        emit("runs", {"runs": [_attempt_doc(r) for r in frame.to_dicts()]})
        return EXIT_OK
    if frame.height == 0:
        print("no runs yet")
        return EXIT_OK
    rows = [[_cell(r["run"]) + (f" (.a{r['attempt']})" if (r["attempt"] or 0) > 1 else ""),
             r["job"], r["trigger"], _cell(r["started_at"]), r["status"],
             _cell(r["attempt"]), _cell(r["error_class"])] for r in frame.to_dicts()]
    _table(rows, ["run", "job", "trigger", "started (UTC)", "status", "attempt", "error"])
    return EXIT_OK


def _show(args: argparse.Namespace, settings: Any) -> int:
    from core.layout import DataLayout
    from jobs.cli.jsonout import emit

    with StateDB(settings.data_dir) as st:
        row = runs.show_run(st, args.run)
        attempts = runs.attempts_of(st, row["run"]).to_dicts() if row else []
    if row is None:
        print(f"recon: error: no run {args.run!r} in the history of {settings.data_dir} (see "
              "`recon runs`)", file=sys.stderr)
        return EXIT_ERROR
    run_dir = DataLayout(settings.data_dir).run_dir(row.get("snapshot_run") or row["run_id"])
    if args.json:
        emit("runs show", {"run_id": row["run"], "asked": args.run,
                           "attempt": _attempt_doc(row),
                           "attempts": [_attempt_doc(a) for a in attempts],
                           "run_dir": str(run_dir) if run_dir.is_dir() else None})
        return EXIT_OK
    shown = {"run": row["run"], "attempt_id": row["run_id"],
             **{k: v for k, v in row.items() if k not in ("run", "run_id")}}
    for k, v in shown.items():
        if k == "counts" and v:
            v = json.dumps(json.loads(v), indent=2, sort_keys=True)
        print(f"{k:>14}: {'' if v is None else v}")
    if run_dir.is_dir():
        print(f"{'run_dir':>14}: {run_dir}")
    if len(attempts) > 1:
        print("\nattempts of this run:")
        for a in attempts:
            why = f" {a['error_class']}: {(a['error_message'] or '')[:120]}" \
                if a["error_class"] else ""
            print(f"  {a['run_id']:<32} {a['trigger']:<9} {_cell(a['started_at']):<16} "
                  f"{a['status']}{why}")
    return EXIT_OK


# -- status -------------------------------------------------------------------------------------
def status_rows(settings: Any) -> list[dict[str, Any]]:
    """Per job — scheduled ones, then any other with history (a disabled job, manual
    reconciles) —: schedule, ticks, the last success, the latest attempt and the state. The
    schedule arithmetic is the scheduler's (``jobs.scheduler.describe_schedule``), so `recon
    status` and the scheduler's overdue alerts always agree."""
    from jobs.scheduler import describe_schedule

    scheduled = {r["job"]: r for r in describe_schedule(settings)}
    with StateDB(settings.data_dir) as st:
        latest = runs.latest_attempts(st)
        jobs = [*scheduled, *(j for j in [*runs.HISTORY_JOBS, *sorted(latest)]
                               if j in latest and j not in scheduled)]
        jobs = list(dict.fromkeys(jobs))
        success = {j: runs.last_success(st, j) for j in jobs}
    out = []
    for job in jobs:
        sched = scheduled.get(job, {})
        last = latest.get(job)
        failed = bool(last and last["status"] in runs.NEEDS_A_PERSON)
        overdue = bool(sched.get("overdue"))
        state = ("FAILED/OVERDUE" if failed and overdue else "OVERDUE" if overdue
                 else "FAILED" if failed else "running" if last and last["status"] == "running"
                 else "ok")
        out.append({"job": job, "schedule": sched.get("cron"),
                    "timezone": sched.get("timezone"),
                    "previous_tick": sched.get("previous_tick_utc"),
                    "next_tick": sched.get("next_tick_utc"), "overdue": overdue,
                    "last_success": success[job], "latest_attempt": last, "state": state,
                    "needs_a_person": failed or overdue})
    return out


def _success_doc(s: dict[str, Any] | None) -> dict[str, Any] | None:
    if s is None:
        return None
    return {"run_id": s.get("run") or s["run_id"], "attempt_id": s["run_id"],
            "status": s["status"], "trigger": s.get("trigger"),
            "started_at": _iso(s["started_at"]), "finished_at": _iso(s["finished_at"])}


def cmd_status(args: argparse.Namespace) -> int:
    from jobs import alerts
    from jobs.cli.jsonout import emit

    settings = _settings(args)
    rows = status_rows(settings)
    code = NEEDS_A_PERSON if any(r["needs_a_person"] for r in rows) else EXIT_OK
    if args.alert:
        for r in rows:
            if r["overdue"]:
                last = r["last_success"]
                tick = f"{r['previous_tick']:%Y-%m-%d %H:%M}" if r["previous_tick"] else "-"
                alerts.send(settings, alerts.payload(
                    "overdue", r["job"], (last.get("run") or last["run_id"]) if last else None,
                    "overdue", {}, None, f"no success since the tick of {tick} UTC"))
    if args.json:
        emit("status", {
            "ok": code == EXIT_OK, "exit_code": code,
            "jobs": [{"job": r["job"], "schedule": r["schedule"], "timezone": r["timezone"],
                      "previous_tick": _iso(r["previous_tick"]),
                      "next_tick": _iso(r["next_tick"]), "overdue": r["overdue"],
                      "state": r["state"], "last_success": _success_doc(r["last_success"]),
                      "latest_attempt": _attempt_doc(r["latest_attempt"])
                      if r["latest_attempt"] else None} for r in rows],
            "event_path": _event_path(settings, quiet=True)})
        return code
    if not rows:
        print("no job scheduled and no runs yet")
    else:
        _print_status(rows)
    _event_path(settings, quiet=False)
    return code


def _print_status(rows: list[dict[str, Any]]) -> None:
    def when(t: dt.datetime | None) -> str:
        return t.strftime("%Y-%m-%d %H:%M") if t else "-"

    table = []
    notes = []
    for r in rows:
        s, a = r["last_success"], r["latest_attempt"]
        label = (f" ({s['trigger']})" if s and s.get("trigger") in ("manual", "demo") else "")
        success = f"{when(s['finished_at'])} {s.get('run') or s['run_id']}{label}" if s \
            else "never"
        latest = f"{when(a['started_at'])} {a['status']} {a['run_id']}" if a else "-"
        table.append([r["job"], r["schedule"] or "-", when(r["previous_tick"]), success,
                      latest, r["state"]])
        if a and a["status"] in runs.NEEDS_A_PERSON:
            why = (f"{a['error_class']}: " if a.get("error_class") else "") + \
                " ".join(str(a.get("error_message") or "").split())[:200]
            notes.append(f"  {r['job']}: latest attempt {a['run_id']} {a['status']}: {why} "
                         f"(`recon runs show {a['run_id']}`)")
    _table(table, ["job", "schedule", "previous tick (UTC)", "last success (UTC)",
                   "latest attempt (UTC)", "state"])
    for n in notes:
        print(n)


def _event_path(settings: Any, *, quiet: bool) -> dict[str, Any] | None:
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
        if not quiet:
            print(f"\nevent path: the callout inbox could not be read ({type(e).__name__})")
        return {"readable": False, "error_class": type(e).__name__}
    if h is None:
        return None
    doc: dict[str, Any] = {"readable": True, "queue_depth": h.queue_depth,
                           "running": h.running, "oldest_pending_s": h.oldest_pending_s,
                           "dead_letters": h.dead_letters, "events_24h": h.events_24h,
                           "syncs_24h": h.syncs_24h, "failed_24h": h.failed_24h,
                           "rejected_24h": h.rejected_24h}
    oldest = f"{h.oldest_pending_s:.0f}s" if h.oldest_pending_s is not None else "-"
    if not quiet:
        print(f"\nevent path: queue {h.queue_depth} ({h.running} syncing), oldest pending "
              f"{oldest}, dead letters {h.dead_letters}; last 24 h: {h.events_24h} callouts, "
              f"{h.syncs_24h} syncs ({h.failed_24h} failed), {h.rejected_24h} rejected")
    with open_read_only(settings.data_dir) as con:
        last = latest_run(con) if con is not None else None
    ev = last["summary"].get("event_path") if last else None
    if last and ev is not None:
        doc["last_nightly"] = {"run_id": last["run_id"],
                               "missed_callouts": ev["missed_callouts"],
                               "missed_keys": len(ev["missed_keys"]),
                               "dead_lettered": ev["failures"],
                               "held_pending": ev["held_synced"] + ev["held_in_flight"]}
        if not quiet:
            print(f"last nightly {last['run_id']}: {ev['missed_callouts']} findings with a "
                  f"missed callout ({len(ev['missed_keys'])} keys), {ev['failures']} on "
                  f"dead-lettered keys, {ev['held_synced'] + ev['held_in_flight']} held pending "
                  "for the event path")
    return doc


def add_parser(sub: Any) -> None:
    rs = sub.add_parser("runs", help="run history (one line per attempt)")
    rs.add_argument("--job", choices=runs.HISTORY_JOBS)
    rs.add_argument("--limit", type=LIMIT, default=30, help="the newest N attempts (default 30)")
    add_json(rs, "print the attempts as JSON (docs/json/runs.schema.json)")
    rs_sub = rs.add_subparsers(dest="runs_command")
    show = rs_sub.add_parser("show", help="one run in detail: the attempt that reconciled "
                             "(else the latest) and its other attempts")
    show.add_argument("run", help="run id (or an attempt's or snapshot's id)")
    add_json(show, "print the run as JSON (docs/json/runs-show.schema.json)")
    rs.set_defaults(func=cmd_runs, runs_command=None)
    show.set_defaults(func=cmd_runs)

    st = sub.add_parser("status", help="per job: latest attempt, last success, overdue? "
                        "(exit 1 when a latest attempt failed or a job is overdue)")
    st.add_argument("--alert", action="store_true", help="send an alert for overdue jobs")
    add_json(st, "print the status as JSON (docs/json/status.schema.json)")
    st.set_defaults(func=cmd_status)
