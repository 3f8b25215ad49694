"""Helpers for the scheduler tests: fast fake job steps, a runner whose idempotency key changes
every tick, a scheduler subprocess (``python -m tests.support.jobs …`` runs
:func:`jobs.scheduler.serve` with them), a local webhook receiver and job_runs readers.

The fake steps go through the REAL :func:`jobs.pipeline.run_job` (lock, idempotency key, run
history), only the extract → report work is replaced by a short sleep.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import http.server
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from core.config import Secret, Settings
from core.state import StateDB
from jobs import runs
from jobs.pipeline import JobAborted, JobResult, run_job

REPO = Path(__file__).resolve().parents[2]


# -- fake work --------------------------------------------------------------------------------
def fake_steps(job: str, settings: Settings, *, stop: threading.Event, progress: Any,
               work: float = 0.2, parts: int = 1) -> dict[str, Any]:
    """``parts`` steps of ``work`` seconds each; like the real pipeline, the stop event is
    checked between steps."""
    for i in range(1, parts + 1):
        if i > 1 and stop.is_set():
            raise JobAborted(f"stopped before part {i} (SIGTERM/SIGINT)")
        print(f"STEPS {job} part {i} pid {os.getpid()}", flush=True)
        end = time.monotonic() + work
        while time.monotonic() < end:
            time.sleep(0.02)
    return {"status": "clean", "counts": {"fake_parts": parts}}


def fake_day(scheduled_for: dt.datetime) -> dt.date:
    """A distinct "scheduled date" per second, so ticks a second or two apart get distinct
    idempotency keys (production keys are per calendar date)."""
    seconds = int(scheduled_for.replace(tzinfo=dt.UTC).timestamp())
    return dt.date(2000, 1, 1) + dt.timedelta(days=seconds % 2_000_000)


def tick_runner(job: str, settings: Settings, *, per_tick_key: bool, steps: Any,
                **kw: Any) -> JobResult:
    """The real run_job with fake steps; prints an ``END`` line per run for the test (and a
    ``RAISED`` line when the lock is refused: the scheduler then waits and tries again)."""
    passed_day = kw["day"]
    if per_tick_key:
        kw["day"] = fake_day(kw["scheduled_for"])
    try:
        res = run_job(job, settings, steps=steps, **kw)
    except Exception as e:
        print(f"RAISED {job} {type(e).__name__} trigger={kw['trigger']} "
              f"scheduled={kw['scheduled_for'].isoformat()}", flush=True)
        raise
    print(f"END {job} status={res.status} trigger={kw['trigger']} "
          f"scheduled={kw['scheduled_for'].isoformat()} day={passed_day}", flush=True)
    return res


def fast_trigger(every: int) -> Any:
    """A trigger factory: every ``every`` seconds, on the same wall-clock seconds in every
    process (so two schedulers fire the same ticks)."""
    def make(job: str, expr: str, tz: ZoneInfo) -> CronTrigger:
        return CronTrigger(second=f"*/{every}", timezone=tz)
    return make


def settings_for(data: Path, **overrides: Any) -> Settings:
    """Settings for a test data dir: DuckDB local database (so the job lock is a file lock),
    only the nightly job scheduled, no webhook."""
    base = Settings(data_dir=data, local_database_url=f"duckdb:///{(data / 'local.duckdb')}",
                    schedule_catalog="", schedule_full="", jobs_retries=0,
                    zuora_client_secret=Secret("zuora-secret-never-in-alerts"))
    return replace(base, **overrides)


# -- job_runs ---------------------------------------------------------------------------------
def job_rows(data: Path) -> list[dict[str, Any]]:
    with StateDB(data) as st:
        df = st.con.sql("SELECT * FROM job_runs ORDER BY started_at, run_id").pl()
    return df.to_dicts()


def seed_success(data: Path, job: str, scheduled_for: dt.datetime,
                 started_at: dt.datetime | None = None) -> str:
    """A successful run in the history, as if it had run at ``started_at`` (naive UTC)."""
    started_at = started_at or scheduled_for
    run_id = f"{job}-seed-{scheduled_for:%Y%m%dT%H%M%S}"
    with StateDB(data) as st:
        st.con.execute(
            "INSERT INTO job_runs (run_id, job, idem_key, trigger, scheduled_for, started_at, "
            "finished_at, status, attempt) VALUES (?, ?, ?, 'schedule', ?, ?, ?, 'clean', 1)",
            [run_id, job, runs.idem_key(job, scheduled_for.date()), scheduled_for, started_at,
             started_at + dt.timedelta(minutes=5)])
    return run_id


# -- a scheduler in its own process -----------------------------------------------------------
class SchedulerProc:
    """``python -m tests.support.jobs`` in a subprocess; its output lines are collected."""

    def __init__(self, data: Path, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")]),
               "PYTHONUNBUFFERED": "1"}
        env.pop("RECON_CONFIG", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.jobs", "--data", str(data), *args], cwd=data,
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def count(self, text: str) -> int:
        with self._cond:
            return sum(text in line for line in self.lines)

    def wait_for(self, text: str, n: int = 1, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while sum(text in line for line in self.lines) < n:
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"{n}× {text!r} not seen in {timeout}s; output:\n"
                                         + "\n".join(self.lines))
                self._cond.wait(min(left, 0.2))

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return rc

    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines)


# -- a webhook receiver -----------------------------------------------------------------------
class Receiver:
    """A local HTTP server recording the JSON bodies POSTed to it (raw and parsed)."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.raw: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                outer.raw.append(body)
                outer.bodies.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T0KEN-in-url"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait(self, n: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.bodies) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.bodies


def main(argv: list[str] | None = None) -> int:
    from jobs import scheduler

    p = argparse.ArgumentParser(prog="tests.support.jobs")
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--every", type=int, default=0,
                   help="fire every N seconds (0: the configured cron expression)")
    p.add_argument("--nightly", default="30 2 * * *")
    p.add_argument("--tz", default="UTC")
    p.add_argument("--work", type=float, default=0.2)
    p.add_argument("--parts", type=int, default=1)
    p.add_argument("--no-catch-up", action="store_true")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(name)s %(levelname)s %(message)s")
    settings = settings_for(a.data, schedule_nightly=a.nightly, schedule_timezone=a.tz)
    steps = functools.partial(fake_steps, work=a.work, parts=a.parts)
    runner = functools.partial(tick_runner, per_tick_key=a.every > 0, steps=steps)
    scheduler.LOCK_POLL_S = 0.1  # ticks two seconds apart: retry a refused lock quickly
    rc = scheduler.serve(settings, runner=runner, catch_up=not a.no_catch_up,
               trigger_factory=fast_trigger(a.every) if a.every else None)
    print(f"EXIT {rc}", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
