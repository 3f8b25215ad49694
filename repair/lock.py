"""The repair lock: one apply or revert at a time per local database.

* PostgreSQL: ``pg_try_advisory_lock(REPAIR_LOCK_KEY)`` on a dedicated session held for the
  whole apply. The session's ``application_name`` names the holder, so a refused apply can say
  who holds it; a killed holder's session ends and the server releases the lock.
* DuckDB: an exclusive ``fcntl.flock`` on ``<database file>.repair.lock``
  (:class:`core.locks.FileLock`), whose content is the holder as JSON. The kernel releases the
  lock when the holding process dies (even by ``kill -9``), so there is never a stale lock to
  clean up; the file's content is only a label.
* In-memory DuckDB: nothing to share, no lock.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import logging
import os
from pathlib import Path
from typing import Any

from core.config import redact_url
from core.errors import LocalDatabaseError
from core.localdb.dialect import Dialect, duckdb_path
from core.locks import FileLock, LockBusy, holder_label
from repair.guards import LockHeld

log = logging.getLogger("recon.repair")

# "reconrep" as a big-endian signed 64-bit integer: the advisory lock key of recon repair.
REPAIR_LOCK_KEY = int.from_bytes(b"reconrep", "big", signed=True)


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers)
        return str(os.getuid())


def holder_info(apply_id: str, kind: str) -> dict[str, Any]:
    return holder_label(apply_id=apply_id, kind=kind, user=_user())


def lock_file_path(url: str) -> Path | None:
    path = duckdb_path(url)
    return None if path == ":memory:" else Path(path + ".repair.lock")


def _describe(h: dict[str, Any]) -> str:
    parts = [f"{h.get('kind', 'apply')} {h.get('apply_id', '?')}"]
    if h.get("host") or h.get("pid"):
        parts.append(f"pid {h.get('pid', '?')} on {h.get('host', '?')}")
    if h.get("user"):
        parts.append(f"user {h['user']}")
    if h.get("since"):
        parts.append(f"since {h['since']}")
    return ", ".join(parts)


class RepairLock:
    """``with RepairLock(url, apply_id, kind):`` — raises :class:`LockHeld` when taken."""

    def __init__(self, url: str, apply_id: str, kind: str = "apply") -> None:
        self.url, self.info = url, holder_info(apply_id, kind)
        self._file: FileLock | None = None
        self._pg: Any = None

    def __enter__(self) -> RepairLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    # -- acquire / release -----------------------------------------------------------------
    def acquire(self) -> None:
        dialect = Dialect.from_url(self.url)
        if dialect is not None and not dialect.advisory_locks:
            self._acquire_file()
        else:
            self._acquire_pg()

    def release(self) -> None:
        """Give the lock back. Never raises: this runs while an apply's own error may be on
        its way out (a PostgreSQL restart kills the lock session as well as the apply's), and
        a release error must not replace that error. Nothing is lost by ignoring one: the
        lock dies with its session or file descriptor, both closed here whatever happens."""
        if self._file is not None:
            lock, self._file = self._file, None
            lock.release()
        if self._pg is not None:
            conn, self._pg = self._pg, None
            try:
                if not conn.closed:
                    conn.execute("SELECT pg_advisory_unlock(%s)", (REPAIR_LOCK_KEY,))
            except Exception as e:  # noqa: BLE001 — the session is gone, and its lock with it
                log.warning("releasing the repair lock on %s: %s: %s (the lock ends with its "
                            "session)", redact_url(self.url), type(e).__name__,
                            " ".join(str(e).split()))
            finally:
                with contextlib.suppress(Exception):
                    conn.close()

    def _acquire_file(self) -> None:
        path = lock_file_path(self.url)
        if path is None:
            return
        lock = FileLock(path, self.info)
        try:
            lock.acquire()
        except LockBusy as busy:
            who = _describe(busy.holder) if busy.holder else \
                "a process that has not written its name"
            raise LockHeld(
                f"another repair holds the lock on {path.name.removesuffix('.repair.lock')}: "
                f"{who}. Wait for it to finish (`recon repair history`); the lock is released "
                f"as soon as that process ends (lock file {path}).", busy.holder) from None
        except OSError as e:
            raise LocalDatabaseError(f"cannot open the repair lock file {path}: {e.strerror}"
                                     ) from e
        self._file = lock

    def _acquire_pg(self) -> None:
        import psycopg

        try:
            conn = psycopg.connect(self.url, autocommit=True)
        except Exception as e:
            raise LocalDatabaseError(
                f"cannot open a lock session on {redact_url(self.url)}: {type(e).__name__}: {e}"
            ) from e
        try:
            i = self.info
            label = f"recon repair {i['kind']} {i['apply_id']} pid {i['pid']}@{i['host']}"
            conn.execute("SELECT set_config('application_name', %s, false)", (label[:63],))
            got = conn.execute("SELECT pg_try_advisory_lock(%s)", (REPAIR_LOCK_KEY,)).fetchall()
            if got[0][0]:
                self._pg = conn
                return
            holder = self._pg_holder(conn)
        except BaseException:
            conn.close()
            raise
        conn.close()
        raise LockHeld(
            f"another repair holds the lock (PostgreSQL advisory lock {REPAIR_LOCK_KEY}) on "
            f"{redact_url(self.url)}: {_describe(holder)}. Wait for it to finish "
            "(`recon repair history`); if that session is stuck, end it with "
            f"pg_terminate_backend({holder.get('backend_pid', 'pid')}).", holder)

    @staticmethod
    def _pg_holder(conn: Any) -> dict[str, Any]:
        rows = conn.execute(
            "SELECT a.pid, a.application_name, a.usename, a.client_addr::text, "
            "a.backend_start FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND l.classid::bigint = %s AND l.objid::bigint = %s AND l.objsubid = 1",
            ((REPAIR_LOCK_KEY >> 32) & 0xFFFFFFFF, REPAIR_LOCK_KEY & 0xFFFFFFFF)).fetchall()
        if not rows:
            return {"apply_id": "?", "kind": "unknown session"}
        pid, app, user, addr, start = rows[0]
        holder: dict[str, Any] = {"backend_pid": pid, "user": user,
                                  "since": start.astimezone(dt.UTC).replace(
                                      microsecond=0).isoformat() if start else None}
        words = (app or "").split()
        if len(words) >= 6 and words[:2] == ["recon", "repair"]:
            holder.update(kind=words[2], apply_id=words[3])
            pid_host = words[5].split("@", 1)
            holder["pid"] = pid_host[0]
            holder["host"] = pid_host[1] if len(pid_host) > 1 else addr
        else:
            holder.update(kind="session", apply_id=app or "(no application_name)",
                          host=addr or "local socket", pid=f"backend {pid}")
        return holder
