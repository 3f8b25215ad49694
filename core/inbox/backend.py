"""The inbox's two stores behind one small interface: SQLite in WAL mode (the embedded
default, beside a DuckDB local side) and PostgreSQL (tables in recon's schema of the local
database). The SQL is written once with ``?`` placeholders; only locking differs."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from core.config import redact_url
from core.errors import LocalDatabaseError, TransientError

# the PostgreSQL channel on which the receiver tells workers on other hosts to claim now
WAKE_CHANNEL = "recon_inbox_wake"


class InboxError(LocalDatabaseError):
    """The inbox's store refused an operation (unreachable, locked too long, full disk)."""


class InboxUnavailable(InboxError, TransientError):
    """The store cannot be reached or stayed locked: the receiver answers 503 so Zuora
    retries, and the worker tries again."""


# (object_name, DDL) for both stores; REAL/DOUBLE PRECISION times are UTC epoch seconds
def _ddl(double: str, serial: str) -> tuple[tuple[str, str], ...]:
    return (
        ("recon_inbox_events", f"""CREATE TABLE IF NOT EXISTS recon_inbox_events (
  notification_id VARCHAR(255) NOT NULL PRIMARY KEY,  -- Zuora-Notification-Id (dedupe key)
  request_id      VARCHAR(255),                       -- Zuora-Request-Id of the accepted try
  kind            VARCHAR(64) NOT NULL,
  received_at     {double} NOT NULL,
  payload         TEXT,                               -- kept for inspection until pruned
  keys            TEXT NOT NULL,                      -- JSON [[object, key], ...]
  status          VARCHAR(16) NOT NULL,               -- pending | processed | dead
  deliveries      INTEGER NOT NULL,                   -- 1 + duplicates received
  processed_at    {double},
  sync_id         VARCHAR(64))"""),
        ("recon_inbox_pending", f"""CREATE TABLE IF NOT EXISTS recon_inbox_pending (
  object          VARCHAR(32) NOT NULL,
  key             VARCHAR(255) NOT NULL,
  state           VARCHAR(16) NOT NULL,               -- waiting | running
  first_event_at  {double} NOT NULL,
  last_event_at   {double} NOT NULL,
  events          INTEGER NOT NULL,
  not_before      {double} NOT NULL,                  -- debounce deadline / retry time
  attempts        INTEGER NOT NULL,
  ids             TEXT NOT NULL,                      -- JSON: notification ids covered
  rerun_ids       TEXT NOT NULL,                      -- JSON: arrived while running
  rerun_first_at  {double},
  claimed_by      VARCHAR(64),                        -- the claim's token
  claimed_at      {double},
  lease_until     {double},
  claimer         VARCHAR(255),                       -- host:pid or PG backend pid@start
  last_error      TEXT,
  PRIMARY KEY (object, key))"""),
        ("recon_inbox_keys", f"""CREATE TABLE IF NOT EXISTS recon_inbox_keys (
  object          VARCHAR(32) NOT NULL,
  key             VARCHAR(255) NOT NULL,
  last_event_at   {double},
  sync_id         VARCHAR(64),
  finished_at     {double},
  status          VARCHAR(16),                        -- ok | left | failed | dead
  PRIMARY KEY (object, key))"""),
        ("recon_inbox_sync_log", f"""CREATE TABLE IF NOT EXISTS recon_inbox_sync_log (
  sync_id         VARCHAR(64) NOT NULL PRIMARY KEY,
  object          VARCHAR(32) NOT NULL,
  keys            INTEGER NOT NULL,
  trigger_ids     TEXT NOT NULL,
  started_at      {double} NOT NULL,
  finished_at     {double} NOT NULL,
  status          VARCHAR(16) NOT NULL,
  message         TEXT)"""),
        ("recon_inbox_dead", f"""CREATE TABLE IF NOT EXISTS recon_inbox_dead (
  id              {serial},
  object          VARCHAR(32) NOT NULL,
  key             VARCHAR(255) NOT NULL,
  reason          TEXT NOT NULL,
  attempts        INTEGER NOT NULL,
  ids             TEXT NOT NULL,
  first_event_at  {double} NOT NULL,
  dead_at         {double} NOT NULL,
  requeued_at     {double})"""),
        ("recon_inbox_rejected", f"""CREATE TABLE IF NOT EXISTS recon_inbox_rejected (
  id              {serial},
  kind            VARCHAR(64) NOT NULL,
  notification_id VARCHAR(255),
  received_at     {double} NOT NULL,
  reason          TEXT NOT NULL,
  payload         TEXT NOT NULL)"""),
        ("recon_inbox_budget", f"""CREATE TABLE IF NOT EXISTS recon_inbox_budget (
  tenant          VARCHAR(512) NOT NULL PRIMARY KEY,
  tokens          {double} NOT NULL,
  updated_at      {double} NOT NULL,
  blocked_until   {double} NOT NULL)"""),
        ("recon_inbox_budget_slots", f"""CREATE TABLE IF NOT EXISTS recon_inbox_budget_slots (
  slot            VARCHAR(64) NOT NULL PRIMARY KEY,
  tenant          VARCHAR(512) NOT NULL,
  expires_at      {double} NOT NULL)"""),
    )


INDEXES = (
    "CREATE INDEX IF NOT EXISTS recon_inbox_pending_ready ON recon_inbox_pending "
    "(state, not_before)",
    "CREATE INDEX IF NOT EXISTS recon_inbox_events_received ON recon_inbox_events "
    "(received_at)",
)
TABLES = tuple(name for name, _ in _ddl("REAL", "INTEGER"))
# this process's incarnation: a claim made by an earlier process with the same pid (a restarted
# container is pid 1 again) is recognised as dead
_INCARNATION = secrets.token_hex(4)


class Backend:
    """One connection to the store, serialised by a lock (the receiver's threads share it)."""

    name: str
    skip_locked: str  # appended to a SELECT that claims rows
    for_update: str

    def __init__(self) -> None:
        self.lock = threading.RLock()

    def execute(self, sql: str, params: tuple | list = ()) -> int:
        raise NotImplementedError

    def fetch(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        raise NotImplementedError

    def insert_id(self, sql: str, params: tuple | list = ()) -> int:
        raise NotImplementedError

    def transaction(self) -> contextlib.AbstractContextManager[Any]:
        raise NotImplementedError

    def claimer(self) -> str:
        """Who holds a claim, in a form :meth:`dead_claimers_sql` can test."""
        raise NotImplementedError

    def claimer_alive(self, claimer: str | None) -> bool:
        raise NotImplementedError

    def notify(self) -> None:
        """Tell workers in other processes that keys were scheduled (inside the
        transaction that scheduled them). SQLite: nothing — its workers share the
        receiver's process, which wakes them itself."""

    def listen(self, wake: Callable[[], None], stop: threading.Event
               ) -> threading.Thread | None:
        """Call ``wake`` whenever another process notifies; None where there is no such
        channel (the workers poll)."""
        return None

    def close(self) -> None:
        raise NotImplementedError

    def where(self) -> str:
        raise NotImplementedError


class SqliteBackend(Backend):
    """``DATA/inbox.sqlite`` in WAL mode: one writer at a time, readers never blocked, so the
    nightly reads pending keys while the receiver writes. ``synchronous=FULL``: an event
    answered 200 survives a power cut, not just a killed process."""

    name = "sqlite"
    skip_locked = ""
    for_update = ""

    def __init__(self, path: Path, busy_timeout_s: float = 30.0) -> None:
        super().__init__()
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(str(path), timeout=busy_timeout_s,
                                        isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
            for _, ddl in _ddl("REAL", "INTEGER PRIMARY KEY AUTOINCREMENT"):
                self.conn.execute(ddl)
            for ddl in INDEXES:
                self.conn.execute(ddl)
        except (sqlite3.Error, OSError) as e:
            raise InboxUnavailable(f"cannot open the callout inbox {path}: {e} (check that "
                                   "the data directory is writable)") from e

    def _run(self, sql: str, params: tuple | list) -> sqlite3.Cursor:
        try:
            return self.conn.execute(sql, params)
        except sqlite3.OperationalError as e:
            raise InboxUnavailable(f"callout inbox {self.path}: {e}") from e

    def execute(self, sql: str, params: tuple | list = ()) -> int:
        return self._run(sql, params).rowcount

    def fetch(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        return self._run(sql, params).fetchall()

    def insert_id(self, sql: str, params: tuple | list = ()) -> int:
        return int(self._run(sql, params).lastrowid or 0)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self.lock:
            self._run("BEGIN IMMEDIATE", ())  # take the write lock now, not at first write
            try:
                yield
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self._run("COMMIT", ())

    def claimer(self) -> str:
        return f"{socket.gethostname()}:{os.getpid()}:{_INCARNATION}"

    def claimer_alive(self, claimer: str | None) -> bool:
        """SQLite is one host's store: a claimer process that no longer exists is dead, and so
        is an earlier incarnation with this process's pid (a container restarted: pid 1
        again)."""
        parts = (claimer or "").rsplit(":", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            return False
        host, pid, incarnation = parts[0], int(parts[1]), parts[2]
        if host != socket.gethostname():
            return True  # not ours to judge: the lease decides
        if pid == os.getpid():
            return incarnation == _INCARNATION
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    def where(self) -> str:
        return str(self.path)


class PostgresBackend(Backend):
    """Tables in recon's schema of the PostgreSQL local side. Workers claim with ``FOR UPDATE
    SKIP LOCKED``; a claim names the PostgreSQL backend (pid and start time), so a worker that
    died (kill -9, a lost host) is noticed as soon as its connection is gone."""

    name = "postgresql"
    skip_locked = " FOR UPDATE SKIP LOCKED"
    for_update = " FOR UPDATE"

    def __init__(self, url: str) -> None:
        super().__init__()
        import psycopg

        self._psycopg = psycopg
        self.url = url
        try:
            self.conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
            # created already (the last index is created last, in the same transaction):
            # skip the DDL, whose CREATE INDEX would lock the tables against running workers
            made = self.conn.execute("SELECT to_regclass('recon_inbox_events_received')")
            if (made.fetchone() or (None,))[0] is None:
                self._create()
            row = self.conn.execute(
                "SELECT pg_backend_pid(), backend_start::text FROM pg_stat_activity "
                "WHERE pid = pg_backend_pid()").fetchone()
            self._me = f"{row[0]}@{row[1]}" if row else ""
        except psycopg.Error as e:
            raise InboxUnavailable(f"cannot open the callout inbox in {redact_url(url)}: "
                                   f"{type(e).__name__}: {e}") from e

    def _create(self) -> None:
        with self.conn.transaction():
            # one creator at a time (two processes starting together)
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)",
                              (int.from_bytes(b"reconinb", "big", signed=True),))
            for _, ddl in _ddl("DOUBLE PRECISION", "BIGSERIAL PRIMARY KEY"):
                self.conn.execute(ddl)  # type: ignore[arg-type]
            for ddl in INDEXES:
                self.conn.execute(ddl)  # type: ignore[arg-type]

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("?", "%s")

    def _run(self, sql: str, params: tuple | list) -> Any:
        try:
            return self.conn.execute(self._sql(sql), params)  # type: ignore[arg-type]
        except (self._psycopg.OperationalError, self._psycopg.InterfaceError) as e:
            raise InboxUnavailable(f"callout inbox in {redact_url(self.url)}: "
                                   f"{type(e).__name__}: {e}") from e

    def execute(self, sql: str, params: tuple | list = ()) -> int:
        return self._run(sql, params).rowcount

    def fetch(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        cur = self._run(sql, params)
        return cur.fetchall() if cur.description else []

    def insert_id(self, sql: str, params: tuple | list = ()) -> int:
        return int(self._run(sql + " RETURNING id", params).fetchone()[0])

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self.lock:
            try:
                with self.conn.transaction():
                    yield
            except (self._psycopg.OperationalError, self._psycopg.InterfaceError) as e:
                raise InboxUnavailable(f"callout inbox in {redact_url(self.url)}: "
                                       f"{type(e).__name__}: {e}") from e

    def claimer(self) -> str:
        return self._me

    def notify(self) -> None:
        # delivered when the transaction commits, to every listening worker process
        self._run(f"NOTIFY {WAKE_CHANNEL}", ())

    def listen(self, wake: Callable[[], None], stop: threading.Event) -> threading.Thread:
        """A daemon thread that calls ``wake`` on every ``notify`` of any process (its own
        connection, ``LISTEN``); on a lost connection it reconnects after a second (the
        workers' polling covers the gap). Ends when ``stop`` is set."""
        def run() -> None:
            while not stop.is_set():
                try:
                    with self._psycopg.connect(self.url, autocommit=True,
                                               connect_timeout=10) as conn:
                        conn.execute(f"LISTEN {WAKE_CHANNEL}")
                        while not stop.is_set():
                            for _n in conn.notifies(timeout=0.5):
                                wake()
                except self._psycopg.Error:
                    stop.wait(1.0)

        t = threading.Thread(target=run, name="recon-inbox-listen", daemon=True)
        t.start()
        return t

    def claimer_alive(self, claimer: str | None) -> bool:
        if not claimer or "@" not in claimer:
            return False
        pid, _, start = claimer.partition("@")
        rows = self.fetch("SELECT backend_start::text FROM pg_stat_activity WHERE pid = ?",
                          (int(pid),))
        if not rows:
            return False  # the claimer's connection is gone
        # another role's session shows no start time without pg_read_all_stats: alive for all
        # we know (the lease decides); a different start time is a new backend with that pid
        return rows[0][0] is None or rows[0][0] == start

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    def where(self) -> str:
        return redact_url(self.url)
