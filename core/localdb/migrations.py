"""Versioned schemas for recon's own objects: ordered, numbered migrations per store.

recon owns objects in two stores it does not otherwise control the lifetime of: the local
database (the repair audit, the identity; see :mod:`core.localdb.recon_objects`) and its
state file (``DATA/state.duckdb``, :mod:`core.state`). Each store records the migrations
applied to it in ``recon_schema_migrations`` (one row per migration: version, name, when); its
schema version is the highest recorded one, and 0 when the table does not exist (a store
written before versioning, e.g. by recon at a16424a).

:func:`migrate` brings a store up to date in ONE transaction (all pending migrations and
their records commit together or not at all), is idempotent (a second run finds nothing
pending) and refuses a store written by a newer recon (:class:`SchemaTooNew`) instead of
guessing what its newer objects mean. A migration must tolerate objects that already have
its shape (``IF NOT EXISTS``): a store written before versioning may hold some of them.

On PostgreSQL a transaction-scoped advisory lock serialises concurrent migrations.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from core.errors import ReconError
from core.localdb.dialect import Dialect

VERSION_TABLE = "recon_schema_migrations"
VERSION_DDL = f"""CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (
  version     INTEGER NOT NULL,        -- the migration's number (the store's schema version)
  name        VARCHAR(255) NOT NULL,   -- what it did
  applied_at  TIMESTAMP NOT NULL,      -- UTC, naive
  PRIMARY KEY (version)
)"""
# "reconmig" as a big-endian signed 64-bit integer: the advisory lock key of migrations.
MIGRATION_LOCK_KEY = int.from_bytes(b"reconmig", "big", signed=True)


class SchemaTooNew(ReconError):
    """The store was written by a newer recon; this one does not know its objects."""


class SchemaOutdated(ReconError):
    """The store's schema is older than this recon needs and was not upgraded."""


class Conn(Protocol):
    """What a migration needs from a connection (both stores' adapters provide it)."""

    dialect: Dialect

    def execute(self, sql: str, params: tuple | list | None = None) -> None: ...

    def fetch(self, sql: str, params: tuple | list | None = None) -> list[tuple]: ...

    def transaction(self) -> contextlib.AbstractContextManager[Any]: ...


@dataclass(frozen=True)
class Migration:
    """One numbered change. ``statements`` run in order; ``run`` (optional) afterwards, for
    changes that need logic. Both must be idempotent against objects that already exist."""

    version: int
    name: str
    statements: tuple[str, ...] = ()
    run: Callable[[Conn], None] | None = None


def check_sequence(store: str, migrations: Sequence[Migration]) -> None:
    """Versions must be 1, 2, 3, … in order: a gap or a duplicate is a programming error."""
    for i, m in enumerate(migrations, 1):
        if m.version != i:
            raise ValueError(f"{store} migrations must be numbered 1..n in order; position {i} "
                             f"is version {m.version} ({m.name})")


def latest(migrations: Sequence[Migration]) -> int:
    return migrations[-1].version if migrations else 0


def _has_version_table(conn: Conn) -> bool:
    return bool(conn.fetch(conn.dialect.table_exists_sql, [VERSION_TABLE])[0][0])


def current_version(conn: Conn) -> int:
    """The store's schema version: the highest applied migration, 0 when unversioned."""
    if not _has_version_table(conn):
        return 0
    return int(conn.fetch(f"SELECT coalesce(max(version), 0) FROM {VERSION_TABLE}")[0][0])


def too_new_message(what: str, found: int, known: int) -> str:
    return (f"{what}: this database was written by a newer recon (schema {found} > {known}); "
            "upgrade recon")


def check_not_newer(conn: Conn, what: str, migrations: Sequence[Migration]) -> int:
    """The store's version; raises :class:`SchemaTooNew` when it is newer than ours."""
    found, known = current_version(conn), latest(migrations)
    if found > known:
        raise SchemaTooNew(too_new_message(what, found, known))
    return found


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def migrate(conn: Conn, what: str, migrations: Sequence[Migration], *,
            before: Callable[[Conn], None] | None = None,
            record_only: bool = False) -> list[Migration]:
    """Apply the pending migrations in one transaction; returns those applied ([]: up to
    date). ``before`` runs first in the same transaction (e.g. creating declared tables).
    ``record_only``: the store was just created at the latest shape, so the migrations are
    recorded without running. Raises :class:`SchemaTooNew` for a newer store."""
    check_sequence(what, migrations)
    with conn.transaction():
        lock = conn.dialect.xact_lock_sql()
        if lock:  # two processes migrating one database take turns
            conn.execute(lock, (MIGRATION_LOCK_KEY,))
        found = check_not_newer(conn, what, migrations)  # re-read under the lock
        conn.execute(VERSION_DDL)
        if before is not None:
            before(conn)
        pending = [m for m in migrations if m.version > found]
        values = conn.dialect.placeholders(3)
        for m in pending:
            if not record_only:
                for sql in m.statements:
                    conn.execute(sql)
                if m.run is not None:
                    m.run(conn)
            conn.execute(f"INSERT INTO {VERSION_TABLE} (version, name, applied_at) "
                         f"VALUES ({values})", [m.version, m.name, _utc_now()])
    return pending


# -- adapters ---------------------------------------------------------------------------------
class DuckConn:
    """A raw DuckDB connection as a :class:`Conn` (the state file)."""

    dialect = Dialect.DUCKDB

    def __init__(self, con: Any) -> None:
        self.con = con

    def execute(self, sql: str, params: tuple | list | None = None) -> None:
        self.con.execute(sql, params)

    def fetch(self, sql: str, params: tuple | list | None = None) -> list[tuple]:
        return self.con.execute(sql, params).fetchall()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")


class LocalConn:
    """A :class:`~core.localdb.connect.LocalDB` as a :class:`Conn` (either dialect)."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.dialect = db.dialect

    def execute(self, sql: str, params: tuple | list | None = None) -> None:
        self.db.execute(sql, params)

    def fetch(self, sql: str, params: tuple | list | None = None) -> list[tuple]:
        return self.dialect.fetch(self.db.raw, sql, params)

    def transaction(self) -> contextlib.AbstractContextManager[Any]:
        return self.db.transaction()
