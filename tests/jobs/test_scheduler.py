"""``recon scheduler`` (jobs/scheduler.py): APScheduler 3.x as the trigger, recon's run_job for
everything else. Schedulers run as real processes (``python -m tests.support.jobs``) with a trigger
that fires every two seconds; the job's steps are fast fakes, the rest (job lock, idempotency
key, run history) is the real code."""

from __future__ import annotations

import datetime as dt
import functools
import json
import threading
import time
from collections import defaultdict
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.date import DateTrigger

from core.config import ConfigError, Secret
from jobs import scheduler as sch
from jobs.locks import job_lock
from jobs.pipeline import run_job
from tests.support.jobs import (
    Receiver,
    SchedulerProc,
    fake_day,
    fake_steps,
    job_rows,
    seed_success,
    settings_for,
)

UTC = dt.UTC


def _runner(**step_kw):
    return functools.partial(run_job, steps=functools.partial(fake_steps, **step_kw))


def _by_tick(rows: list[dict]) -> dict[dt.datetime, list[dict]]:
    ticks: dict[dt.datetime, list[dict]] = defaultdict(list)
    for r in rows:
        ticks[r["scheduled_for"]].append(r)
    return ticks


# -- 1. a fast trigger runs the nightly job and records it ------------------------------------
@pytest.mark.slow
def test_fast_trigger_runs_the_nightly_job_and_records_each_tick(tmp_path: Path) -> None:
    p = SchedulerProc(tmp_path, "--every", "2", "--no-catch-up")
    try:
        p.wait_for("END nightly status=clean trigger=schedule", n=2)
    finally:
        assert p.stop() == 0, p.output()
    rows = job_rows(tmp_path)
    assert len(rows) >= 2 and {r["status"] for r in rows} == {"clean"}, rows
    assert {r["trigger"] for r in rows} == {"schedule"}
    assert len({r["scheduled_for"] for r in rows}) == len(rows)
    for r in rows:
        t = r["scheduled_for"]
        # the tick's *scheduled* time (an even second), not the moment the job started
        assert t.microsecond == 0 and t.second % 2 == 0, r
        assert t <= r["started_at"] < t + dt.timedelta(seconds=10), r
        assert r["idem_key"] == f"nightly:{fake_day(t).isoformat()}"
        assert r["attempt"] == 1 and r["finished_at"] is not None
    # the scheduler passes the tick's date in the schedule's time zone (UTC here) as `day`
    for line in p.lines:
        if line.startswith("END nightly status=clean"):
            scheduled = dt.datetime.fromisoformat(line.split("scheduled=")[1].split()[0])
            assert line.endswith(f"day={scheduled.date().isoformat()}"), line


# -- 2. two schedulers, one run per tick ------------------------------------------------------
@pytest.mark.slow
def test_two_scheduler_processes_make_one_successful_run_per_tick(tmp_path: Path) -> None:
    a = SchedulerProc(tmp_path, "--every", "2", "--work", "0.5")
    b = SchedulerProc(tmp_path, "--every", "2", "--work", "0.5")
    try:
        for p in (a, b):
            p.wait_for("Scheduler started")
        for p in (a, b):
            p.wait_for("END nightly status=", n=5, timeout=30)
    finally:
        assert a.stop() == 0, a.output()
        assert b.stop() == 0, b.output()
    ticks = _by_tick(job_rows(tmp_path))
    both = 0
    for tick, rows in ticks.items():
        statuses = sorted(r["status"] for r in rows)
        assert set(statuses) <= {"clean", "skipped"} and len(rows) <= 2, (tick, rows)
        assert statuses.count("clean") <= 1, (tick, rows)  # never twice
        # a tick without a success is only one that every process dropped because its
        # previous tick was still running there (recorded, not silent)
        if "clean" not in statuses:
            assert all("still going" in r["error_message"] for r in rows), (tick, rows)
        if len(rows) == 2 and "clean" in statuses:
            both += 1
            loser = next(r for r in rows if r["status"] == "skipped")
            winner = next(r for r in rows if r["status"] == "clean")
            assert loser["pid"] != winner["pid"]
            # waited for the lock and found the tick's key taken (or was still busy)
            assert ("duplicate tick" in loser["error_message"]
                    or "still going" in loser["error_message"]), loser
    assert both >= 3, ticks  # both processes really fired the same ticks


# -- 3. downtime: exactly one catch-up run ----------------------------------------------------
@pytest.mark.slow
def test_missed_nights_after_downtime_make_exactly_one_catch_up_run(tmp_path: Path) -> None:
    now = dt.datetime.now(UTC).replace(second=0, microsecond=0)
    last_tick = now - dt.timedelta(hours=6)  # the latest tick: 6 h ago, the next in 18 h
    cron = f"{last_tick.minute} {last_tick.hour} * * *"
    seed = seed_success(tmp_path, "nightly", (last_tick - dt.timedelta(days=3)).replace(
        tzinfo=None))
    p = SchedulerProc(tmp_path, "--nightly", cron)
    try:
        p.wait_for("END nightly status=clean trigger=catch-up")
        time.sleep(1.0)  # time for any (wrong) further catch-up runs
    finally:
        assert p.stop() == 0, p.output()
    rows = [r for r in job_rows(tmp_path) if r["run_id"] != seed]
    assert len(rows) == 1, rows  # not one per missed night
    (row,) = rows
    assert row["trigger"] == "catch-up" and row["status"] == "clean"
    assert row["scheduled_for"] == last_tick.replace(tzinfo=None)
    assert row["idem_key"] == f"nightly:{last_tick.date().isoformat()}"

    # a restart finds the latest tick covered: nothing to catch up
    again = SchedulerProc(tmp_path, "--nightly", cron)
    try:
        again.wait_for("Scheduler started")
        time.sleep(1.0)
    finally:
        assert again.stop() == 0, again.output()
    assert "catching up" not in again.output()
    assert len(job_rows(tmp_path)) == 2


# -- 4. SIGTERM mid-run -----------------------------------------------------------------------
@pytest.mark.slow
def test_sigterm_mid_run_aborts_cleanly_records_the_run_and_exits_0(tmp_path: Path) -> None:
    p = SchedulerProc(tmp_path, "--every", "2", "--no-catch-up", "--work", "1.5", "--parts",
                      "3")
    try:
        p.wait_for("STEPS nightly part 1")
    finally:
        t0 = time.monotonic()
        rc = p.stop()
        took = time.monotonic() - t0
    assert rc == 0, p.output()
    assert took < 8, took  # the current step (1.5 s) finishes, the next ones do not start
    assert "STEPS nightly part 2" not in p.output()
    assert "EXIT 0" in p.output()
    rows = job_rows(tmp_path)
    assert len(rows) == 1, rows
    assert rows[0]["status"] == "failed" and rows[0]["error_class"] == "JobAborted", rows
    assert rows[0]["finished_at"] is not None
    assert not [r for r in rows if r["status"] == "running"]


# -- 5. EVENT_JOB_MISSED → a missed row and an alert ------------------------------------------
def test_a_tick_missed_beyond_the_grace_is_recorded_and_alerted(tmp_path: Path) -> None:
    tick = (dt.datetime.now(UTC) - dt.timedelta(hours=1)).replace(microsecond=0)
    called: list[str] = []
    with Receiver() as hook:
        settings = settings_for(tmp_path, jobs_misfire_grace_hours=1 / 3600,
                                alerts_webhook_url=Secret(hook.url))
        stop = threading.Event()
        # a tick an hour late with a one-second grace: APScheduler submits it and its executor
        # reports EVENT_JOB_MISSED instead of running it
        sched = sch.build_scheduler(
            settings, runner=lambda job, *a, **k: called.append(job), stop=stop,
            trigger_factory=lambda job, expr, tz: DateTrigger(tick), catch_up=False)
        thread = threading.Thread(target=sched.start, daemon=True)
        thread.start()
        try:
            bodies = hook.wait(1)
        finally:
            stop.set()
            sched.shutdown(wait=True)
            thread.join(5)
    assert called == []
    rows = job_rows(tmp_path)
    assert len(rows) == 1, rows
    row = rows[0]
    assert row["status"] == "missed" and row["trigger"] == "schedule"
    assert row["scheduled_for"] == tick.replace(tzinfo=None)
    assert row["idem_key"] == f"nightly:{tick.date().isoformat()}"
    assert "misfire grace" in row["error_message"]
    assert len(bodies) == 1
    alert = bodies[0]["recon"]
    assert alert["alert"] == "missed" and alert["job"] == "nightly"
    assert alert["run_id"] == row["run_id"] and alert["status"] == "missed"
    assert "zuora-secret-never-in-alerts" not in hook.raw[0] and "T0KEN" not in hook.raw[0]


# -- 6. DST: the fall-back night's two fires make one run -------------------------------------
def test_dst_fall_back_double_fire_is_one_run_and_one_skipped_row(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, schedule_timezone="Europe/Berlin",
                            schedule_nightly="30 2 * * *")
    trigger = sch.job_triggers(settings)["nightly"]
    fires = sch.fire_times(trigger, dt.datetime(2026, 10, 24, 20, tzinfo=UTC),
                           dt.datetime(2026, 10, 25, 6, tzinfo=UTC))
    # APScheduler 3.11 fires at 02:30+02:00 and again at 02:30+01:00
    assert [sch.naive_utc(t) for t in fires] == [dt.datetime(2026, 10, 25, 0, 30),
                                                 dt.datetime(2026, 10, 25, 1, 30)]
    assert [t.utcoffset() for t in fires] == [dt.timedelta(hours=2), dt.timedelta(hours=1)]
    # the callable's "which tick is this" finds the second fire, not the first
    assert sch.previous_fire_time(trigger, dt.datetime(2026, 10, 25, 1, 45, tzinfo=UTC)) == fires[1]
    assert sch.naive_utc(sch.previous_fire_time(
        trigger, dt.datetime(2026, 10, 25, 1, 45, tzinfo=UTC))) == dt.datetime(2026, 10, 25, 1, 30)

    results = [sch.run_tick("nightly", settings, t, runner=_runner(work=0.05)) for t in fires]
    assert [r.status for r in results] == ["clean", "skipped"]
    rows = job_rows(tmp_path)
    assert [(r["status"], r["scheduled_for"], r["idem_key"]) for r in rows] == [
        ("clean", dt.datetime(2026, 10, 25, 0, 30), "nightly:2026-10-25"),
        ("skipped", dt.datetime(2026, 10, 25, 1, 30), "nightly:2026-10-25")]
    assert "duplicate tick" in rows[1]["error_message"]

    # spring forward: 02:30 does not exist; one fire at 03:30 CEST, dated that day
    spring = sch.fire_times(trigger, dt.datetime(2026, 3, 28, 20, tzinfo=UTC),
                            dt.datetime(2026, 3, 29, 6, tzinfo=UTC))
    assert [sch.naive_utc(t) for t in spring] == [dt.datetime(2026, 3, 29, 1, 30)]
    assert sch.tick_day(spring[0], ZoneInfo("Europe/Berlin")) == dt.date(2026, 3, 29)


# -- the rest of the contract -----------------------------------------------------------------
def test_a_tick_waits_for_a_held_lock_then_runs(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    tick = dt.datetime.now(UTC).replace(microsecond=0)
    held = threading.Event()

    def manual_run() -> None:  # e.g. `recon run nightly --date` for another day
        with job_lock(settings, "nightly", "nightly-manual-holder"):
            held.set()
            time.sleep(0.6)

    holder = threading.Thread(target=manual_run)
    holder.start()
    held.wait(5)
    t0 = time.monotonic()
    res = sch.run_tick("nightly", settings, tick, runner=_runner(), lock_poll_s=0.05)
    holder.join()
    assert res is not None and res.status == "clean"
    assert time.monotonic() - t0 >= 0.4  # it waited for the holder instead of being lost
    (row,) = job_rows(tmp_path)
    assert row["status"] == "clean" and row["scheduled_for"] == tick.replace(tzinfo=None)


@pytest.mark.slow
def test_a_lock_held_past_the_grace_is_a_skipped_row_naming_the_holder(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, jobs_misfire_grace_hours=1 / 3600)
    tick = dt.datetime(2026, 11, 2, 2, 30, tzinfo=UTC)
    with job_lock(settings, "nightly", "nightly-manual-holder"):
        res = sch.run_tick("nightly", settings, tick, runner=_runner(), lock_poll_s=0.1)
    assert res is not None and res.status == "skipped"
    (row,) = job_rows(tmp_path)
    assert row["status"] == "skipped" and row["trigger"] == "schedule"
    assert "nightly-manual-holder" in row["error_message"]
    assert "after the misfire grace" in row["error_message"]
    assert row["scheduled_for"] == dt.datetime(2026, 11, 2, 2, 30)
    # the lock is free again: the same tick now runs (a skipped row does not take the key)
    assert sch.run_tick("nightly", settings, tick, runner=_runner()).status == "clean"
    # …and a stopping scheduler starts nothing
    stop = threading.Event()
    stop.set()
    assert sch.run_tick("nightly", settings, tick, runner=_runner(), stop=stop) is None
    assert len(job_rows(tmp_path)) == 2


def test_overdue_alerts_once_per_tick_and_clears_after_a_success(tmp_path: Path) -> None:
    now = dt.datetime.now(UTC).replace(second=0, microsecond=0)
    tick = now - dt.timedelta(hours=8)  # older than the 6 h grace
    with Receiver() as hook:
        settings = settings_for(tmp_path, schedule_nightly=f"{tick.minute} {tick.hour} * * *",
                                alerts_webhook_url=Secret(hook.url))
        seed = seed_success(tmp_path, "nightly", (tick - dt.timedelta(days=1)).replace(
            tzinfo=None))
        ctx = sch.Context(settings, run_job, threading.Event(), sch.job_triggers(settings),
                          ZoneInfo("UTC"))
        assert [o["job"] for o in sch.check_overdue(ctx)] == ["nightly"]
        assert sch.check_overdue(ctx) == []  # once per tick
        bodies = hook.wait(1)
        (status,) = sch.describe_schedule(settings)
        assert status["overdue"] and status["last_success"]["run_id"] == seed
        assert status["previous_tick_utc"] == tick.replace(tzinfo=None)
        # within the grace, a job is not overdue yet
        assert sch.overdue(settings, now=tick + dt.timedelta(hours=5)) == []
        seed_success(tmp_path, "nightly", tick.replace(tzinfo=None),
                     started_at=tick.replace(tzinfo=None) + dt.timedelta(minutes=1))
        assert sch.overdue(settings) == []
    assert len(bodies) == 1
    alert = bodies[0]["recon"]
    assert alert["alert"] == "overdue" and alert["job"] == "nightly" and alert["run_id"] == seed
    assert "zuora-secret-never-in-alerts" not in hook.raw[0]


def test_jobs_are_declared_from_config_with_a_generous_grace(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, schedule_catalog="0 6 * * *", schedule_full="",
                            schedule_timezone="Europe/Berlin", jobs_misfire_grace_hours=6.0)
    now = dt.datetime.now(UTC)
    # a fresh install catches up once per enabled job (with the latest tick)
    sched = sch.build_scheduler(settings, stop=threading.Event())
    jobs = {j.id: j for j in sched.get_jobs()}
    assert set(jobs) == {"nightly", "catalog", "catch-up", "overdue-check"}
    due = jobs["catch-up"].args[1]
    assert list(due) == ["nightly", "catalog"]
    for name in ("nightly", "catalog"):
        j = jobs[name]
        assert (j.misfire_grace_time, j.coalesce, j.max_instances) == (6 * 3600, True, 1)
        assert str(j.trigger.timezone) == "Europe/Berlin"
        assert j.func is sch.fire and j.args[0] == name
        tick = due[name]
        assert tick == sch.previous_fire_time(j.trigger, now)
        assert sch.naive_utc(tick) < now.replace(tzinfo=None)
    # covered by a success: no catch-up
    seed_success(tmp_path, "nightly", sch.naive_utc(due["nightly"]))
    again = {j.id: j for j in sch.build_scheduler(settings, stop=threading.Event()).get_jobs()}
    assert list(again["catch-up"].args[1]) == ["catalog"]

    with pytest.raises(ConfigError, match=r"schedule\.catalog"):
        sch.build_scheduler(settings_for(tmp_path, schedule_catalog="0 6 * *"),
                            stop=threading.Event())
    with pytest.raises(ConfigError, match=r"schedule\.timezone"):
        sch.build_scheduler(settings_for(tmp_path, schedule_timezone="Mars/Olympus"),
                            stop=threading.Event())


# -- the real pipeline under the scheduler ----------------------------------------------------
@pytest.mark.slow
@pytest.mark.postgres
def test_the_scheduler_runs_the_real_nightly_job_against_the_sandbox(tmp_path: Path,
                                                                     pg_url: str) -> None:
    """One tick of the real nightly job (extract over HTTP from the sandbox → validate →
    reconcile → repair plan → report) with a PostgreSQL local database, fired by APScheduler
    and recorded in job_runs."""
    from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED

    from sandbox.generate.run import Options, generate
    from sandbox.server import SandboxServer

    tenant, data = tmp_path / "tenant", tmp_path / "data"
    generate(Options(accounts=60, seed=3), tenant, db_url=pg_url)
    secret = "sandbox-secret-never-recorded"
    tick = (dt.datetime.now(UTC) + dt.timedelta(seconds=1)).replace(microsecond=0)
    with SandboxServer(tenant, client_id="recon", client_secret=secret) as srv:
        settings = settings_for(data, zuora_base_url=srv.url, zuora_client_secret=Secret(secret),
                                local_database_url=pg_url)
        stop, done = threading.Event(), threading.Event()
        sched = sch.build_scheduler(settings, stop=stop, catch_up=False,
                                    trigger_factory=lambda job, expr, tz: DateTrigger(tick))
        sched.add_listener(lambda e: done.set() if e.job_id == "nightly" else None,
                           EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
        thread = threading.Thread(target=sched.start, daemon=True)
        thread.start()
        try:
            assert done.wait(60), "the tick did not finish"
        finally:
            stop.set()
            sched.shutdown(wait=True)
            thread.join(5)
    (row,) = job_rows(data)
    assert row["status"] in ("clean", "drift"), row
    assert row["trigger"] == "schedule" and row["attempt"] == 1
    assert row["scheduled_for"] == tick.replace(tzinfo=None)
    assert row["idem_key"] == f"nightly:{tick.date().isoformat()}"
    assert row["snapshot_run"] and Path(row["report_path"]).is_file()
    counts = json.loads(row["counts"])
    assert counts["zuora_rows"] > 0 and counts["extract_mode"] == "full"
    assert secret not in json.dumps(row, default=str)
