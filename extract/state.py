"""recon's own state: a small DuckDB file, ``DATA/state.duckdb``.

Each floor owns its tables and declares them with :func:`register_table`; opening the state
creates whatever is missing (``CREATE TABLE IF NOT EXISTS``), so adding a table later needs no
migration step. A change to an existing table ships as a numbered migration
(:func:`register_migration`, :mod:`extract.localdb.migrations`): the file records the
migrations applied to it, opening it applies the pending ones in one transaction (idempotent),
and a file written by a newer recon is refused by name (:class:`StateSchemaTooNew`). A file
written before versioning (recon a16424a) is version 0 and is upgraded in place. The extractor's table is ``extract_hwm``: one row per Zuora object with the
high-water mark of the last *complete* snapshot and that snapshot's run id. It is written only
after a snapshot has been renamed complete (:meth:`StateDB.set_hwms`, one transaction), so a
failed run can never advance a mark.

DuckDB allows one writing process per file; connections are short-lived (open, do, close).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from extract.errors import ReconError
from extract.localdb import migrations as mig

STATE_FILE = "state.duckdb"

_TABLES: dict[str, str] = {}
# The state file's migrations, in order (append only; never edit a released one). Version 1
# is the state as recon wrote it before versioning: its tables are the registered ones.
MIGRATIONS: list[mig.Migration] = [
    mig.Migration(1, "baseline: recon_schema_migrations records the state's schema version"),
]


class StateError(ReconError):
    """recon's state file cannot be opened or written."""


class StateSchemaTooNew(StateError, mig.SchemaTooNew):
    """The state file was written by a newer recon."""


class StateLockTimeout(StateError):
    """Another process kept the state file open for writing longer than we waited (DuckDB
    allows one writing process per file). Transient: the nightly job retries it."""


def register_table(name: str, ddl: str) -> None:
    """Declare a state table (``ddl`` must be ``CREATE TABLE IF NOT EXISTS name (...)``)."""
    if "IF NOT EXISTS" not in ddl.upper():
        raise ValueError(f"state table {name}: DDL must be idempotent (IF NOT EXISTS)")
    _TABLES[name] = ddl


def register_migration(version: int, name: str, statements: tuple[str, ...] = (),
                       run: Callable[[mig.Conn], None] | None = None) -> None:
    """Append a migration of the state file (``version`` = the next number). Its statements
    must tolerate tables already in the new shape (a fresh file creates the registered tables
    at their current DDL before pending migrations run): use ``IF NOT EXISTS``."""
    expected = mig.latest(MIGRATIONS) + 1
    if version != expected:
        raise ValueError(f"state migration {name!r}: version {version}, expected {expected}")
    MIGRATIONS.append(mig.Migration(version, name, tuple(statements), run))


register_table("extract_hwm", """
CREATE TABLE IF NOT EXISTS extract_hwm (
  object      VARCHAR PRIMARY KEY,   -- Zuora object name
  hwm         TIMESTAMP NOT NULL,    -- UTC, naive: next incremental starts here (inclusive)
  run_id      VARCHAR NOT NULL,      -- the complete snapshot that covers up to hwm
  mode        VARCHAR NOT NULL,      -- full | incremental
  updated_at  TIMESTAMP NOT NULL     -- UTC, when this row was written
)""")


@dataclass(frozen=True)
class Mark:
    object: str
    hwm: dt.datetime  # aware, UTC
    run_id: str
    mode: str


def state_path(data_dir: Path | str) -> Path:
    return Path(data_dir) / STATE_FILE


def _naive_utc(t: dt.datetime) -> dt.datetime:
    if t.tzinfo is None:
        return t
    return t.astimezone(dt.UTC).replace(tzinfo=None)


class StateDB:
    """Open with ``with StateDB(data_dir) as st: ...``."""

    def __init__(self, data_dir: Path | str, wait_s: float = 30.0) -> None:
        self.path = state_path(data_dir)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + wait_s
        delay = 0.05
        while True:
            try:
                self.con = duckdb.connect(str(self.path))
                break
            except duckdb.IOException as e:  # another process holds the file's write lock
                if "lock" not in str(e).lower() or time.monotonic() >= deadline:
                    if "lock" in str(e).lower():
                        raise StateLockTimeout(
                            f"recon state {self.path} stayed locked by another process for "
                            f"{wait_s:.0f}s: {e}") from e
                    raise StateError(f"cannot open recon state {self.path}: {e}") from e
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
            except duckdb.Error as e:
                raise StateError(f"cannot open recon state {self.path}: {e}") from e
        try:
            self._upgrade()
        except mig.SchemaTooNew as e:
            self.con.close()
            raise StateSchemaTooNew(str(e)) from None
        except Exception:
            self.con.close()
            raise

    def _create_tables(self, conn: mig.Conn) -> None:
        for ddl in _TABLES.values():
            conn.execute(ddl)

    def _upgrade(self) -> None:
        """Refuse a newer file; bring an older one up to date (pending migrations and the
        registered tables in one transaction); create what is missing in a current one."""
        conn = mig.DuckConn(self.con)
        what = f"recon state {self.path}"
        found = mig.check_not_newer(conn, what, MIGRATIONS)
        if found == mig.latest(MIGRATIONS):
            self._create_tables(conn)  # a table registered since the file was last opened
            return
        fresh = not conn.fetch("SELECT count(*) FROM information_schema.tables "
                               "WHERE table_schema = current_schema()")[0][0]
        mig.migrate(conn, what, MIGRATIONS, before=self._create_tables, record_only=fresh)

    def schema_version(self) -> int:
        return mig.current_version(mig.DuckConn(self.con))

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> StateDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield self.con
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    # -- high-water marks ------------------------------------------------------------------
    def hwms(self) -> dict[str, Mark]:
        rows = self.con.execute(
            "SELECT object, hwm, run_id, mode FROM extract_hwm ORDER BY object").fetchall()
        return {o: Mark(o, h.replace(tzinfo=dt.UTC), r, m) for o, h, r, m in rows}

    def set_hwms(self, run_id: str, mode: str, hwms: dict[str, dt.datetime]) -> None:
        """Record the marks of one complete snapshot, all or nothing."""
        now = _naive_utc(dt.datetime.now(dt.UTC))
        with self.transaction() as con:
            for obj, hwm in hwms.items():
                con.execute(
                    "INSERT OR REPLACE INTO extract_hwm VALUES (?, ?, ?, ?, ?)",
                    [obj, _naive_utc(hwm), run_id, mode, now],
                )

