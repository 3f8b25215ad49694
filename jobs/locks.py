"""One run per job at a time, across processes and hosts.

The lock is taken inside ``recon run`` itself, so cron, the scheduler and a person at a
terminal all respect it. With a PostgreSQL local database it is ``pg_try_advisory_lock`` on a
session held for the whole run (shared by every host that reaches the database; the server
releases it when the session ends, even after ``kill -9``); otherwise an exclusive
``fcntl.flock`` on ``DATA/locks/<job>.lock`` (released by the kernel when the holder dies). The
lock file's content, and the session's ``application_name``, name the holder for the refusal
message.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from core.config import Settings
from core.errors import ReconError


class JobLocked(ReconError):
    """Another run of the same job holds the lock (exit 2, naming the holder)."""


def _key(job: str) -> int:
    return int.from_bytes(hashlib.sha256(f"recon-job:{job}".encode()).digest()[:8], "big",
                          signed=True)


def holder(run_id: str, job: str) -> dict[str, Any]:
    return {"job": job, "run_id": run_id, "host": socket.gethostname(), "pid": os.getpid(),
            "since": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()}


def describe(h: dict[str, Any]) -> str:
    return (f"run {h.get('run_id', '?')} (pid {h.get('pid', '?')} on {h.get('host', '?')}, "
            f"since {h.get('since', '?')})")


@contextlib.contextmanager
def job_lock(settings: Settings, job: str, run_id: str) -> Iterator[None]:
    """Hold the job's lock for the ``with`` block or raise :class:`JobLocked`."""
    me = holder(run_id, job)
    if urlsplit(settings.local_database_url).scheme in ("postgresql", "postgres"):
        yield from _pg_lock(settings.local_database_url, job, me)
    else:
        yield from _file_lock(Path(settings.data_dir) / "locks" / f"{job}.lock", job, me)


def _file_lock(path: Path, job: str, me: dict[str, Any]) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            try:
                other = json.loads(fh.read() or "{}")
            except ValueError:
                other = {}
            raise JobLocked(f"job {job} is already running as {describe(other)}; lock "
                            f"{path} — wait for it, or check `recon runs`") from None
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps(me))
        fh.flush()
        yield
    finally:
        fh.close()


def _pg_lock(url: str, job: str, me: dict[str, Any]) -> Iterator[None]:
    import psycopg

    from core.localdb.connect import connect

    label = f"recon {job} {me['run_id']} pid {me['pid']} on {me['host']}"[:63]
    with connect(url) as db:
        conn = db.raw
        conn.autocommit = True
        conn.execute("SELECT set_config('application_name', %s, false)", (label,))
        got = conn.execute("SELECT pg_try_advisory_lock(%s)", (_key(job),)).fetchone()[0]
        if not got:
            rows = conn.execute(
                "SELECT a.application_name, a.backend_start FROM pg_locks l JOIN "
                "pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND "
                "l.granted AND (l.classid::bigint << 32 | l.objid::bigint) = %s",
                (_key(job) & 0xFFFFFFFFFFFFFFFF,)).fetchall()
            who = rows[0][0] if rows else "another session"
            raise JobLocked(f"job {job} is already running: the PostgreSQL advisory lock is "
                            f"held by '{who}'; wait for it, or check `recon runs`")
        try:
            yield
        finally:
            with contextlib.suppress(psycopg.Error):
                conn.execute("SELECT pg_advisory_unlock(%s)", (_key(job),))
