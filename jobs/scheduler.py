"""``recon scheduler``: the long-running process that fires recon's jobs on their cron schedule.

APScheduler 3.x supplies the trigger and nothing more (``../shared/docs/dq-report-anchors.md``
§4): a :class:`BlockingScheduler` with a :class:`MemoryJobStore` and the jobs declared in code
from the config, so nothing is pickled and a restart re-reads the schedule. Every tick goes
through :func:`jobs.pipeline.run_job`, exactly like ``recon run`` from cron, a Kubernetes CronJob
or a terminal, so the job lock, the idempotency key, the retries, the run history and the alerts
are the same whoever started the run.

Jobs and triggers
    One APScheduler job per non-empty cron expression (``schedule.nightly`` / ``.catalog`` /
    ``.full``; "" disables a job), ``CronTrigger.from_crontab(expr, timezone=schedule.timezone)``,
    ``misfire_grace_time`` = ``jobs.misfire_grace_hours`` (APScheduler's default of 1 s would
    skip a tick that was a second late), ``coalesce=True``, ``max_instances=1``. The callable is
    :func:`fire`; it works out the tick it is running for (the trigger's latest fire time at or
    before now — the *scheduled* time, not the wall clock) and calls ``run_job(job, settings,
    trigger="schedule", scheduled_for=<tick, naive UTC>, day=<tick's date in the schedule's
    time zone>, stop=stop)``. The steps are ``recon run``'s (:func:`jobs.steps.run_steps`),
    so ``extract.lag_hours`` / ``RECON_EXTRACT_LAG_HOURS`` and the snapshot lineage
    (``jobs.lineage``) apply to scheduled ticks exactly as to ``recon run``. Within one process the jobs run one at a time, in the order their
    ticks come (a second extract into the same data directory would be refused by the snapshot
    lock while the first runs); across processes and hosts the job lock decides.

Another run holds the lock (:class:`jobs.locks.JobLocked`)
    A manual run, a cron run or a second scheduler is running the job. The tick waits for the
    lock (polling, at most the misfire grace) and then goes through ``run_job`` as usual: if
    the holder ran the same date, the key is taken and the tick is a recorded ``skipped``
    no-op; if it ran another date (a catch-up, a manual ``--date``), the tick still runs instead
    of being lost. A lock still held after the grace (or a shutdown while waiting) is recorded
    as a ``skipped`` row whose message names the holder; the overdue check alerts if no
    success follows.

Missed ticks
    A tick that APScheduler could not start within the misfire grace (the process was suspended,
    the executor was blocked) raises ``EVENT_JOB_MISSED``: recon records a ``missed`` row and
    sends a ``missed`` alert, and does not run it late — the grace is the operator's window for
    "still worth running"; ``recon run JOB`` (or a restart, see catch-up) runs it. A tick dropped
    because the previous run of the same job is still going (``EVENT_JOB_MAX_INSTANCES``) is
    recorded as ``skipped``. An exception escaping a tick (``EVENT_JOB_ERROR``) is logged;
    ``run_job`` records its own failures.

Start-up catch-up
    The job store is in memory, so APScheduler never runs ticks that passed while the process
    was down. At start-up, for each job, recon takes the most recent tick already past (the
    trigger's latest fire time before now). If no successful run covers it — a success under a
    scheduled key (a tick, a catch-up, ``recon run JOB --scheduled [--date D]``; never a manual
    run, which has a key of its own) covers a tick when it started at or after the tick, or was
    scheduled for it or a later one — the job
    runs **once**, immediately, with trigger ``catch-up`` and that tick's ``scheduled_for`` and
    date; the older missed nights are never replayed (Airflow ``catchup=False``). A fresh install
    with no history counts as "not covered" and runs once (as Airflow runs the latest interval
    when a DAG is switched on): the first baseline arrives now rather than at the next tick.

Overdue
    Every hour, a job whose latest tick is older than the misfire grace and not covered by a
    success is overdue: one ``overdue`` alert per job and tick (a tick already alerted as missed
    is not alerted again). :func:`overdue` is also what ``recon status`` can show.

SIGTERM / SIGINT
    The handler sets the ``stop`` event — ``run_job`` checks it between steps and aborts with
    :class:`jobs.pipeline.JobAborted`, recorded ``failed`` and never left ``running`` — and
    shuts the scheduler down (waiting for the running tick) from a helper thread, so the
    handler never blocks inside APScheduler's locks. ``serve`` then returns 0. A second signal
    only logs: the current step is allowed to finish (Kubernetes: give the pod a
    ``terminationGracePeriodSeconds`` longer than the longest step).

Time zones and DST
    The default schedule time zone is UTC, which has no DST. With a local zone, APScheduler 3.11
    fires a 02:30 job twice on the fall-back night (02:30+02:00 and 02:30+01:00 in
    Europe/Berlin) and once at 03:30 local on the spring-forward night. Both fall-back fires
    have the same idempotency key (job + scheduled date in the schedule's time zone), so the
    second one finds the key taken and is a recorded ``skipped`` no-op (had the first one
    failed, the second is simply another attempt at that date). The spring-forward run is
    dated that day as well. Or keep local schedules outside 01:00–03:30.

On a terminal (``announce``: ``recon scheduler`` passes ``print`` when stdout is a tty; quiet
under cron, systemd or Kubernetes) it prints each job's schedule and next tick at start-up, the
catch-ups it is about to run, and after each tick the run's outcome and the job's next tick.

Logging goes to the ``recon.scheduler`` logger (quiet by default: INFO for ticks, WARNING for
catch-ups / missed / overdue / signals).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_SCHEDULER_STARTED,
    JobExecutionEvent,
    JobSubmissionEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from core.config import ConfigError, Settings
from core.state import StateDB
from jobs import alerts, runs
from jobs.locks import JobLocked
from jobs.pipeline import JobResult, run_job

log = logging.getLogger("recon.scheduler")

Runner = Callable[..., JobResult]
#: ``(job, cron expression, time zone) -> trigger``; the default is :func:`cron_trigger`.
TriggerFactory = Callable[[str, str, ZoneInfo], BaseTrigger]

CATCH_UP = "catch-up"  # APScheduler id of the one-off start-up catch-up
OVERDUE_CHECK = "overdue-check"
LOCK_POLL_S = 5.0  # how often a tick waiting for the job lock tries again


# -- schedule from config ---------------------------------------------------------------------
def schedule_tz(settings: Settings) -> ZoneInfo:
    try:
        return ZoneInfo(settings.schedule_timezone)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ConfigError(f"schedule.timezone {settings.schedule_timezone!r} is not an IANA time "
                          "zone (e.g. UTC or Europe/Berlin)") from e


def cron_expressions(settings: Settings) -> dict[str, str]:
    """The enabled jobs and their cron expressions (an empty expression disables a job)."""
    exprs = {"nightly": settings.schedule_nightly, "catalog": settings.schedule_catalog,
             "full": settings.schedule_full}
    return {job: expr.strip() for job, expr in exprs.items() if expr and expr.strip()}


def cron_trigger(job: str, expr: str, tz: ZoneInfo) -> CronTrigger:
    try:
        return CronTrigger.from_crontab(expr, timezone=tz)
    except ValueError as e:
        raise ConfigError(f"schedule.{job} {expr!r} is not a 5-field cron expression (minute "
                          f"hour day month weekday): {e}") from e


def job_triggers(settings: Settings,
                 trigger_factory: TriggerFactory | None = None) -> dict[str, BaseTrigger]:
    tz = schedule_tz(settings)
    make = trigger_factory or cron_trigger
    return {job: make(job, expr, tz) for job, expr in cron_expressions(settings).items()}


def grace_seconds(settings: Settings) -> int:
    """``jobs.misfire_grace_hours`` as APScheduler wants it (a positive int of seconds)."""
    return max(1, round(settings.jobs_misfire_grace_hours * 3600))


# -- ticks ------------------------------------------------------------------------------------
def _utc(t: dt.datetime) -> dt.datetime:
    return t.astimezone(dt.UTC)


def naive_utc(t: dt.datetime) -> dt.datetime:
    """What ``job_runs.scheduled_for`` stores."""
    return _utc(t).replace(tzinfo=None) if t.tzinfo else t


def tick_day(t: dt.datetime, tz: ZoneInfo) -> dt.date:
    """The scheduled date of a tick in the schedule's time zone (the idempotency key's date)."""
    return t.astimezone(tz).date()


def fire_times(trigger: BaseTrigger, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """The trigger's fire times in ``[start, end]`` (aware datetimes, compared in UTC: two
    fall-back wall times with the same tzinfo compare equal otherwise)."""
    out: list[dt.datetime] = []
    t = trigger.get_next_fire_time(None, start)
    while t is not None and _utc(t) <= _utc(end):
        out.append(t)
        n = trigger.get_next_fire_time(t, t)
        if n is None or _utc(n) <= _utc(t):
            break
        t = n
    return out


def previous_fire_time(trigger: BaseTrigger, now: dt.datetime | None = None,
                       horizon: dt.timedelta = dt.timedelta(days=800)) -> dt.datetime | None:
    """The trigger's latest fire time at or before ``now`` (None if it never fired within
    ``horizon``). APScheduler 3 has no such call: look back over growing windows."""
    now = now or dt.datetime.now(dt.UTC)
    span = dt.timedelta(minutes=1)
    while True:
        times = fire_times(trigger, now - span, now)
        if times:
            return times[-1]
        if span >= horizon:
            return None
        span = min(span * 4, horizon)


def covers(success: dict[str, Any] | None, tick: dt.datetime) -> bool:
    """Does this successful run (a ``runs.last_success`` row) make ``tick`` unnecessary? Yes
    when it started at or after the tick, or was scheduled for it (or a later tick)."""
    if not success:
        return False
    t = naive_utc(tick)
    return bool((success.get("started_at") and success["started_at"] >= t) or
                (success.get("scheduled_for") and success["scheduled_for"] >= t))


# -- running one tick -------------------------------------------------------------------------
def run_tick(job: str, settings: Settings, scheduled: dt.datetime, *, runner: Runner = run_job,
             stop: threading.Event | None = None, trigger: str = "schedule",
             lock_poll_s: float | None = None) -> JobResult | None:
    """Run ``job`` for the tick ``scheduled`` (aware): the scheduler's job callable without the
    APScheduler wrapping. While another run holds the job lock, wait for it (polling every
    ``lock_poll_s``, default :data:`LOCK_POLL_S`) for up to the misfire grace, then run — a
    holder that ran the same date leaves the key taken, so that is a recorded no-op. If the
    lock stays taken (or the scheduler stops while waiting), record a ``skipped`` row naming the
    holder. Returns None when the scheduler was already stopping (nothing recorded)."""
    stop = stop or threading.Event()
    poll = LOCK_POLL_S if lock_poll_s is None else lock_poll_s
    tz = schedule_tz(settings)
    when, day = naive_utc(scheduled), tick_day(scheduled, tz)
    if stop.is_set():
        log.info("%s tick %s not started: the scheduler is stopping", job, scheduled.isoformat())
        return None
    log.info("%s: %s run for %s (%s)", job, trigger, scheduled.isoformat(), day)
    give_up = time.monotonic() + grace_seconds(settings)
    waiting = False
    while True:
        try:
            result = runner(job, settings, trigger=trigger, scheduled_for=when, day=day,
                            stop=stop)
            break
        except JobLocked as e:
            if stop.is_set() or time.monotonic() >= give_up:
                why = ("the scheduler is stopping" if stop.is_set() else
                       f"still locked after the misfire grace "
                       f"({settings.jobs_misfire_grace_hours:g} h)")
                msg = f"tick not run ({why}): another run holds the lock — {e}"
                with StateDB(settings.data_dir) as st:
                    rid = runs.record(st, job, runs.idem_key(job, day), trigger, "skipped",
                                      when, msg)
                log.warning("%s tick %s skipped: %s", job, scheduled.isoformat(), msg)
                return JobResult(rid, job, "skipped", 0, error=e)
            if not waiting:
                log.info("%s tick %s waits for the lock: %s", job, scheduled.isoformat(), e)
                waiting = True
            stop.wait(poll)
    log.info("%s: run %s %s", job, result.run_id, result.status)
    return result


@dataclass
class Context:
    """What the job callables need; passed as an argument (the job store is in memory, so
    nothing is pickled)."""

    settings: Settings
    runner: Runner
    stop: threading.Event
    triggers: dict[str, BaseTrigger]
    tz: ZoneInfo
    # one job at a time in this process (other processes: the job lock and the extract lock)
    serial: threading.Lock = field(default_factory=threading.Lock)
    alerted: dict[str, dt.datetime] = field(default_factory=dict)  # job -> tick (UTC) alerted


def fire(job: str, ctx: Context) -> JobResult | None:
    """APScheduler's callable for a scheduled tick of ``job``."""
    scheduled = previous_fire_time(ctx.triggers[job], dt.datetime.now(dt.UTC))
    if scheduled is None:  # cannot happen for a trigger that just fired
        log.error("%s fired but its trigger has no fire time before now; not run", job)
        return None
    with ctx.serial:
        return run_tick(job, ctx.settings, scheduled, runner=ctx.runner, stop=ctx.stop)


def run_catch_ups(ctx: Context, due: dict[str, dt.datetime]) -> list[JobResult | None]:
    """APScheduler's callable for the one-off start-up catch-up: each due job once, one after
    another (nightly, catalog, full), each for its latest missed tick."""
    out = []
    for job in runs.JOBS:
        if job in due:
            with ctx.serial:
                out.append(run_tick(job, ctx.settings, due[job], runner=ctx.runner,
                                    stop=ctx.stop, trigger="catch-up"))
    return out


def catch_up_due(settings: Settings, triggers: dict[str, BaseTrigger],
                 now: dt.datetime | None = None) -> dict[str, dt.datetime]:
    """Per job, the latest tick already past that no success covers (the one catch-up run)."""
    now = now or dt.datetime.now(dt.UTC)
    due: dict[str, dt.datetime] = {}
    with StateDB(settings.data_dir) as st:
        for job, trigger in triggers.items():
            tick = previous_fire_time(trigger, now)
            last = runs.last_success(st, job, scheduled_only=True)
            if tick is not None and not covers(last, tick):
                due[job] = tick
    return due


def overdue(settings: Settings, triggers: dict[str, BaseTrigger] | None = None,
            now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Jobs whose latest tick is older than the misfire grace and not covered by a success."""
    triggers = job_triggers(settings) if triggers is None else triggers
    now = now or dt.datetime.now(dt.UTC)
    grace = dt.timedelta(seconds=grace_seconds(settings))
    out: list[dict[str, Any]] = []
    with StateDB(settings.data_dir) as st:
        for job, trigger in triggers.items():
            tick = previous_fire_time(trigger, now)
            if tick is None or _utc(now) - _utc(tick) <= grace:
                continue
            last = runs.last_success(st, job, scheduled_only=True)
            if not covers(last, tick):
                out.append({"job": job, "tick": tick, "last_success": last})
    return out


def check_overdue(ctx: Context, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """The hourly check: one ``overdue`` alert per job and tick. Returns what it alerted."""
    sent = []
    for o in overdue(ctx.settings, ctx.triggers, now):
        job, tick, last = o["job"], o["tick"], o["last_success"]
        if ctx.alerted.get(job) == _utc(tick):
            continue
        ctx.alerted[job] = _utc(tick)
        since = (f"last success {last['run_id']} started {last['started_at']:%Y-%m-%d %H:%M} UTC"
                 if last else "never succeeded")
        detail = (f"tick {tick.isoformat()} not run within {ctx.settings.jobs_misfire_grace_hours:g}"
                  f" h; {since}")
        log.warning("%s is overdue: %s", job, detail)
        alerts.send(ctx.settings, alerts.payload("overdue", job, last["run_id"] if last else None,
                                                 "overdue", {}, None, detail))
        sent.append(o)
    return sent


# -- listeners --------------------------------------------------------------------------------
def _record_not_run(ctx: Context, job: str, tick: dt.datetime, status: str, msg: str) -> str:
    with StateDB(ctx.settings.data_dir) as st:
        return runs.record(st, job, runs.idem_key(job, tick_day(tick, ctx.tz)), "schedule",
                           status, naive_utc(tick), msg)


def _on_missed(ctx: Context, event: JobExecutionEvent) -> None:
    job, tick = event.job_id, event.scheduled_run_time
    if job not in runs.JOBS:
        return
    late = dt.datetime.now(dt.UTC) - _utc(tick)
    msg = (f"tick {tick.isoformat()} missed: it could not start within the misfire grace "
           f"({ctx.settings.jobs_misfire_grace_hours:g} h; late by {late}); not run — "
           f"`recon run {job}` runs it now")
    log.warning("%s %s", job, msg)
    rid = _record_not_run(ctx, job, tick, "missed", msg)
    ctx.alerted[job] = _utc(tick)  # the overdue check need not alert this tick again
    alerts.send(ctx.settings, alerts.payload("missed", job, rid, "missed", {}, None, msg))


def _on_max_instances(ctx: Context, event: JobSubmissionEvent) -> None:
    if event.job_id not in runs.JOBS:
        return
    for tick in event.scheduled_run_times:
        msg = (f"tick {tick.isoformat()} not run: the previous run of {event.job_id} in this "
               "scheduler is still going")
        log.warning("%s %s", event.job_id, msg)
        _record_not_run(ctx, event.job_id, tick, "skipped", msg)


def _on_error(event: JobExecutionEvent) -> None:
    log.error("%s tick %s raised %s: %s", event.job_id, event.scheduled_run_time,
              type(event.exception).__name__, event.exception)
    log.debug("%s", event.traceback)


def _safely(fn: Callable[[Any], None]) -> Callable[[Any], None]:
    def listener(event: Any) -> None:
        try:
            fn(event)
        except Exception:  # a listener must never take the scheduler down
            log.exception("recording scheduler event %s of %s failed", event.code,
                          getattr(event, "job_id", None))
    return listener


# -- the scheduler ----------------------------------------------------------------------------
def catch_up_message(job: str, tick: dt.datetime) -> str:
    """What the scheduler logs (WARNING) and prints before a start-up catch-up."""
    return (f"{job}: no success since its tick {tick.isoformat()}; catching up once now "
            "(trigger catch-up, for that tick only: older missed ticks are not replayed; "
            "findings are new or persisting against the last reconciled run, as in any run)")


def build_scheduler(settings: Settings, *, runner: Runner = run_job, stop: threading.Event,
                    trigger_factory: TriggerFactory | None = None,
                    catch_up: bool = True,
                    announce: Callable[[str], None] | None = None) -> BlockingScheduler:
    """A not-yet-started :class:`BlockingScheduler` with recon's jobs, listeners, the hourly
    overdue check and (``catch_up``) the start-up catch-up runs. ``trigger_factory`` replaces
    the cron triggers (tests use a trigger that fires every second or two); ``announce``
    (a terminal) also gets the catch-ups and, after each tick, its outcome and next tick."""
    tz = schedule_tz(settings)
    triggers = job_triggers(settings, trigger_factory)
    ctx = Context(settings, runner, stop, triggers, tz)
    tick_options = {"misfire_grace_time": grace_seconds(settings), "coalesce": True,
                    "max_instances": 1}
    sched = BlockingScheduler(
        timezone=tz, jobstores={"default": MemoryJobStore()},
        executors={"default": ThreadPoolExecutor(max_workers=2 * len(runs.JOBS) + 1)},
        job_defaults=tick_options)
    for job, trigger in triggers.items():
        sched.add_job(fire, trigger, args=[job, ctx], id=job, name=f"recon {job}",
                      replace_existing=True, **tick_options)
    if catch_up and (due := catch_up_due(settings, triggers)):
        for job, tick in due.items():
            log.warning("%s", catch_up_message(job, tick))
            if announce is not None:
                announce(catch_up_message(job, tick))
        sched.add_job(run_catch_ups, DateTrigger(dt.datetime.now(tz)), args=[ctx, due],
                      id=CATCH_UP, name="recon catch-up", misfire_grace_time=None,
                      replace_existing=True)
    if triggers:
        sched.add_job(check_overdue, IntervalTrigger(hours=1),
                      args=[ctx], id=OVERDUE_CHECK, name="recon overdue check",
                      replace_existing=True)
    sched.add_listener(_safely(lambda e: _on_missed(ctx, e)), EVENT_JOB_MISSED)
    sched.add_listener(_safely(lambda e: _on_max_instances(ctx, e)), EVENT_JOB_MAX_INSTANCES)
    sched.add_listener(_safely(_on_error), EVENT_JOB_ERROR)
    if announce is not None:
        sched.add_listener(_safely(lambda e: _on_executed(ctx, sched, announce, e)),
                           EVENT_JOB_EXECUTED)
    return sched


def _on_executed(ctx: Context, sched: BlockingScheduler, announce: Callable[[str], None],
                 event: JobExecutionEvent) -> None:
    """On a terminal: each tick's (or catch-up's) outcome and the job's next tick."""
    results = event.retval if isinstance(event.retval, list) else [event.retval]
    for r in results:
        if not isinstance(r, JobResult):
            continue
        job = sched.get_job(r.job)
        nxt = getattr(job, "next_run_time", None) if job is not None else None
        why = f" ({type(r.error).__name__}: {r.error})" if r.error is not None else ""
        announce(f"{r.job}: run {r.run_id} {r.status}{why}"
                 + (f"; next tick {nxt.isoformat()} (UTC {naive_utc(nxt):%Y-%m-%d %H:%M})"
                    if nxt else ""))


def schedule_lines(settings: Settings, now: dt.datetime | None = None,
                   trigger_factory: TriggerFactory | None = None) -> list[str]:
    """What ``recon scheduler`` prints on a terminal at start-up: per enabled job its cron,
    time zone, next tick (local and UTC), last scheduled success and whether it is overdue."""
    rows = describe_schedule(settings, now, trigger_factory)
    if not rows:
        return ["no job scheduled ([schedule] has every job disabled); nothing to do"]
    out = []
    for r in rows:
        last = r["last_success"]
        since = (f"last success {last.get('run') or last['run_id']} at "
                 f"{last['finished_at']:%Y-%m-%d %H:%M} UTC" if last else "never succeeded")
        nxt = r["next_tick"]
        out.append(f"{r['job']}: {r['cron']} ({r['timezone']}); next tick "
                   f"{nxt.isoformat() if nxt else '-'}"
                   + (f" (UTC {r['next_tick_utc']:%Y-%m-%d %H:%M})" if nxt else "")
                   + f"; {since}" + ("; OVERDUE" if r["overdue"] else ""))
    return out


def describe_schedule(settings: Settings, now: dt.datetime | None = None,
                      trigger_factory: TriggerFactory | None = None) -> list[dict[str, Any]]:
    """Per enabled job: cron, time zone, previous and next tick (local and UTC), last success
    and whether it is overdue — for ``recon status`` and the scheduler's start-up log."""
    now = now or dt.datetime.now(dt.UTC)
    tz = schedule_tz(settings)
    triggers = job_triggers(settings, trigger_factory)
    late = {o["job"] for o in overdue(settings, triggers, now)}
    with StateDB(settings.data_dir) as st:
        last = {job: runs.last_success(st, job, scheduled_only=True) for job in triggers}
    out = []
    for job, trigger in triggers.items():
        prev = previous_fire_time(trigger, now)
        nxt = trigger.get_next_fire_time(None, now.astimezone(tz))
        out.append({"job": job, "cron": cron_expressions(settings)[job],
                    "timezone": settings.schedule_timezone,
                    "previous_tick": prev, "previous_tick_utc": naive_utc(prev) if prev else None,
                    "next_tick": nxt, "next_tick_utc": naive_utc(nxt) if nxt else None,
                    "last_success": last[job], "overdue": job in late})
    return out


def serve(settings: Settings, *, runner: Runner = run_job, install_signals: bool = True,
          trigger_factory: TriggerFactory | None = None, catch_up: bool = True,
          announce: Callable[[str], None] | None = None) -> int:
    """``recon scheduler``: run until SIGTERM/SIGINT, then let the current step finish or abort
    cleanly and return 0. ``announce``: where a terminal's lines go (None: quiet)."""
    stop = threading.Event()
    if announce is not None:
        for line in schedule_lines(settings, trigger_factory=trigger_factory):
            announce(line)
    sched = build_scheduler(settings, runner=runner, stop=stop, trigger_factory=trigger_factory,
                            catch_up=catch_up, announce=announce)
    stopper: list[threading.Thread] = []

    def shut() -> None:
        with contextlib.suppress(SchedulerNotRunningError):
            sched.shutdown(wait=True)

    def request_stop(why: str) -> None:
        if stop.is_set() and stopper:
            log.warning("%s: already stopping; waiting for the current step", why)
            return
        log.warning("%s: stopping; the current step finishes or aborts", why)
        stop.set()
        if sched.running and not stopper:
            # not from the handler itself: it may have interrupted APScheduler holding its locks
            stopper.append(threading.Thread(target=shut, name="recon-scheduler-stop"))
            stopper[0].start()

    def on_signal(signum: int, _frame: object) -> None:
        request_stop(signal.Signals(signum).name)

    def on_started(_event: object) -> None:  # a signal that came before start()
        if stop.is_set():
            request_stop("stop requested during start-up")

    sched.add_listener(on_started, EVENT_SCHEDULER_STARTED)
    previous: dict[int, Any] = {}
    if install_signals:
        for s in (signal.SIGTERM, signal.SIGINT):
            previous[s] = signal.signal(s, on_signal)
    try:
        for row in describe_schedule(settings, trigger_factory=trigger_factory):
            log.info("%s: %s (%s); next tick %s (UTC %s)", row["job"], row["cron"],
                     row["timezone"], row["next_tick"], row["next_tick_utc"])
        if not stop.is_set():
            sched.start()
    except (KeyboardInterrupt, SystemExit):
        request_stop("interrupted")
    finally:
        for t in stopper:
            t.join()
        if sched.running:  # start() returned without a signal (or never got as far)
            shut()
        for s, h in previous.items():
            signal.signal(s, h)
    log.info("scheduler stopped")
    return 0
