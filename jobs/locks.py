"""One run per job at a time, across processes and hosts.

The lock is taken inside ``recon run`` itself, so cron, the scheduler and a person at a
terminal all respect it. With a PostgreSQL local database it is ``pg_try_advisory_lock`` on a
session held for the whole run (shared by every host that reaches the database; the server
releases it when the session ends, even after ``kill -9``); otherwise an exclusive
``fcntl.flock`` on ``DATA/locks/<job>.lock`` (:class:`core.locks.FileLock`, released by the
kernel when the holder dies). The lock file's content, and the session's ``application_name``,
name the holder for the refusal message.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.config import Settings
from core.errors import ReconError
from core.layout import DataLayout
from core.localdb.dialect import Dialect
from core.locks import FileLock, LockBusy, holder_label


class JobLocked(ReconError):
    """Another run of the same job holds the lock (exit 2, naming the holder)."""


def _key(job: str) -> int:
    return int.from_bytes(hashlib.sha256(f"recon-job:{job}".encode()).digest()[:8], "big",
                          signed=True)


def holder(run_id: str, job: str) -> dict[str, Any]:
    return holder_label(job=job, run_id=run_id)


def describe(h: dict[str, Any]) -> str:
    return (f"run {h.get('run_id', '?')} (pid {h.get('pid', '?')} on {h.get('host', '?')}, "
            f"since {h.get('since', '?')})")


@contextlib.contextmanager
def job_lock(settings: Settings, job: str, run_id: str) -> Iterator[None]:
    """Hold the job's lock for the ``with`` block or raise :class:`JobLocked`."""
    me = holder(run_id, job)
    dialect = Dialect.from_url(settings.local_database_url)
    if dialect is not None and dialect.advisory_locks:
        yield from _pg_lock(settings.local_database_url, job, me)
    else:
        yield from _file_lock(DataLayout(settings.data_dir).job_lock(job), job, me)


def _file_lock(path: Path, job: str, me: dict[str, Any]) -> Iterator[None]:
    lock = FileLock(path, me)
    try:
        lock.acquire()
    except LockBusy as busy:
        raise JobLocked(f"job {job} is already running as {describe(busy.holder)}; lock "
                        f"{path} — wait for it, or check `recon runs`") from None
    try:
        yield
    finally:
        lock.release()


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
