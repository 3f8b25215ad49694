"""recon's own state: a small DuckDB file, ``DATA/state.duckdb``.

Each floor owns its tables and declares them with :func:`register_table`; opening the state
creates whatever is missing (``CREATE TABLE IF NOT EXISTS``), so adding a table later needs no
migration step. A change to an existing table ships as a numbered migration
(:func:`register_migration`, :mod:`core.localdb.migrations`): the file records the
migrations applied to it, opening it applies the pending ones in one transaction (idempotent),
and a file written by a newer recon is refused by name (:class:`StateSchemaTooNew`). A file
written before versioning (recon a16424a) is version 0 and is upgraded in place.

The extractor's table is ``extract_hwm``: one row per Zuora object with the current
high-water mark and the run id of the snapshot it belongs to. A snapshot's marks (in its
manifest) become the current ones only once its validation verdict is *passed* (or an
operator accepted it): :meth:`StateDB.set_hwms`, one transaction, called by the job layer
(``jobs.lineage``), so a failed run, or a complete snapshot that failed validation, can never
advance a mark.

Snapshot lineage: ``snapshot_checks`` holds the outcome of the checks that decide whether a
snapshot may be a base or a baseline (``volume`` — recorded before the snapshot is renamed
complete — and ``contracts``), ``snapshot_accepts`` an operator's acceptance of a real drop
(``recon snapshots accept RUN --reason TEXT``). :meth:`StateDB.verdicts` folds them into one
:class:`Verdict` per snapshot.

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

from core.errors import ReconError, TransientError
from core.layout import DataLayout
from core.localdb import migrations as mig

_TABLES: dict[str, str] = {}


def _job_runs_run(conn: mig.Conn) -> None:
    """Migration 2: ``job_runs.run``, the job run an attempt belongs to (issue 17: one run id;
    attempts are ``<run>`` and ``<run>.a<N>``). An attempt recorded before it is its own run.
    The ledger is declared in :mod:`core.ledger`; a file without it is left alone (the table
    is created at its current shape when a job first runs)."""
    if not conn.fetch("SELECT count(*) FROM information_schema.tables "
                      "WHERE table_name = 'job_runs'")[0][0]:
        return
    conn.execute("ALTER TABLE job_runs ADD COLUMN IF NOT EXISTS run VARCHAR")
    conn.execute("UPDATE job_runs SET run = run_id WHERE run IS NULL")

# Acknowledged findings (issue 17, ``recon findings ack``; read and written by
# ``reconcile.acks``). Declared here, not in its module, because migration 3 creates it: every
# process that opens the state must know the version, whatever it imported.
FINDING_ACKS_DDL = """
CREATE TABLE IF NOT EXISTS finding_acks (
  fingerprint     VARCHAR PRIMARY KEY,  -- the finding (reconcile.history.FINGERPRINT)
  object          VARCHAR NOT NULL,     -- what it is about, for listings and --rule/--key
  key             VARCHAR NOT NULL,
  kind            VARCHAR NOT NULL,
  rule            VARCHAR,              -- the rule, else the likely drift (D-id)
  field           VARCHAR,
  zuora_value     VARCHAR,              -- the values the person saw: a change lapses the ack
  local_value     VARCHAR,
  first_seen_run  VARCHAR NOT NULL,     -- a finding that resolved and came back is new again
  run_id          VARCHAR NOT NULL,     -- the run whose finding was acknowledged
  note            VARCHAR NOT NULL,     -- why (the person's words)
  acked_by        VARCHAR,              -- OS user
  host            VARCHAR,
  acked_at        TIMESTAMP NOT NULL,   -- UTC, naive
  until           DATE                  -- lapses after this day (UTC); NULL: no date
)"""

# The state file's migrations, in order (append only; never edit a released one). Version 1
# is the state as recon wrote it before versioning: its tables are the registered ones.
# They live here, not beside their tables, so every process knows every version whatever it
# imported (a file is never "too new" for a command that did not import a floor).
MIGRATIONS: list[mig.Migration] = [
    mig.Migration(1, "baseline: recon_schema_migrations records the state's schema version"),
    mig.Migration(2, "job_runs.run: the job run an attempt belongs to", run=_job_runs_run),
    mig.Migration(3, "finding_acks: acknowledged findings (recon findings ack)",
                  (FINDING_ACKS_DDL,)),
]


class StateError(ReconError):
    """recon's state file cannot be opened or written."""


class StateSchemaTooNew(StateError, mig.SchemaTooNew):
    """The state file was written by a newer recon."""


class StateLockTimeout(StateError, TransientError):
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


register_table("finding_acks", FINDING_ACKS_DDL)

register_table("snapshot_checks", """
CREATE TABLE IF NOT EXISTS snapshot_checks (
  run_id           VARCHAR NOT NULL,   -- the snapshot
  check_name       VARCHAR NOT NULL,   -- volume | contracts
  outcome          VARCHAR NOT NULL,   -- passed | failed
  baseline_run_id  VARCHAR,            -- volume: the passed snapshot compared with (NULL: none)
  message          VARCHAR,            -- what failed (or what was compared)
  checked_at       TIMESTAMP NOT NULL, -- UTC, naive
  PRIMARY KEY (run_id, check_name)
)""")

register_table("snapshot_accepts", """
CREATE TABLE IF NOT EXISTS snapshot_accepts (
  run_id       VARCHAR PRIMARY KEY,  -- the snapshot whose failed volume check was accepted
  reason       VARCHAR NOT NULL,     -- the operator's words
  accepted_at  TIMESTAMP NOT NULL,   -- UTC, naive
  accepted_by  VARCHAR,             -- OS user
  host         VARCHAR
)""")

CHECKS = ("volume", "contracts")
PASSED, FAILED, ACCEPTED, UNVALIDATED = "passed", "failed", "accepted", "unvalidated"
USABLE = (PASSED, ACCEPTED)  # verdicts that make a snapshot a base and a volume baseline


@dataclass(frozen=True)
class Verdict:
    """A snapshot's validation verdict: ``passed`` (volume and contracts passed),
    ``failed`` (either failed), ``accepted`` (failed on volume only, and an operator accepted
    the drop), ``unvalidated`` (a check has not run yet)."""

    run_id: str
    verdict: str
    volume: str | None = None  # passed | failed | None (not run)
    contracts: str | None = None
    baseline_run_id: str | None = None
    message: str | None = None  # the failed check's message(s)
    accept_reason: str | None = None
    accepted_at: dt.datetime | None = None
    accepted_by: str | None = None

    @property
    def usable(self) -> bool:
        return self.verdict in USABLE


def fold_verdict(run_id: str, checks: dict[str, tuple[str, str | None, str | None]],
                 accept: tuple[str, dt.datetime, str | None] | None) -> Verdict:
    """One verdict from the checks (``{check: (outcome, baseline, message)}``) and an
    acceptance. Only a volume failure can be accepted: a snapshot whose shape or keys broke
    its contracts is not Zuora's state, whatever an operator says."""
    vol, con = checks.get("volume"), checks.get("contracts")
    failed = [(c, v) for c, v in (("volume", vol), ("contracts", con))
              if v is not None and v[0] == FAILED]
    message = "; ".join(v[2] or c for c, v in failed) or None
    if failed:
        verdict = ACCEPTED if accept and [c for c, _ in failed] == ["volume"] else FAILED
    elif vol is not None and con is not None:
        verdict = PASSED
    else:
        verdict = UNVALIDATED
    return Verdict(run_id, verdict, vol[0] if vol else None, con[0] if con else None,
                   vol[1] if vol else None, message,
                   accept[0] if accept else None, accept[1] if accept else None,
                   accept[2] if accept else None)


@dataclass(frozen=True)
class Mark:
    object: str
    hwm: dt.datetime  # aware, UTC
    run_id: str
    mode: str


def state_path(data_dir: Path | str) -> Path:
    return DataLayout(data_dir).state_file


class StateUnreadable(StateError):
    """The state file exists but could not be opened for reading (a writer held it past the
    short wait of :func:`open_read_only`)."""


@contextmanager
def open_read_only(data_dir: Path | str) -> Iterator[duckdb.DuckDBPyConnection | None]:
    """recon's state, read-only (None when there is none yet), for readers that must never
    write, migrate or wait long: a report built while the nightly runs. A writer holding the
    file (the nightly closing a step) is waited for briefly; in the same process, where DuckDB
    refuses a second configuration of one file, a plain connection shares the open one. The
    packages' typed readers (``reconcile.history``, ``expectations.results``,
    ``core.ledger``) take the connection this yields."""
    path = state_path(data_dir)
    if not path.is_file():
        yield None
        return
    con = None
    last: Exception | None = None
    for attempt in range(20):
        try:
            con = duckdb.connect(str(path), read_only=True)
            break
        except duckdb.Error as e:
            last = e
            if "different configuration" in str(e):
                try:
                    con = duckdb.connect(str(path))
                    break
                except duckdb.Error as e2:
                    last = e2
            time.sleep(0.05 * (attempt + 1))
    if con is None:
        raise StateUnreadable(f"recon state {path} cannot be read (another process holds it?): "
                              f"{type(last).__name__}")
    try:
        yield con
    finally:
        con.close()


def table_names(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The tables of a state connection (an old file may lack a floor's newer table)."""
    return {r[0] for r in con.sql("SELECT table_name FROM information_schema.tables").fetchall()}


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
        """Make one snapshot's marks the current ones, all or nothing. Only for a snapshot
        whose verdict is passed or accepted (``jobs.lineage.promote_marks``)."""
        now = _naive_utc(dt.datetime.now(dt.UTC))
        with self.transaction() as con:
            for obj, hwm in hwms.items():
                con.execute(
                    "INSERT OR REPLACE INTO extract_hwm VALUES (?, ?, ?, ?, ?)",
                    [obj, _naive_utc(hwm), run_id, mode, now],
                )


    # -- snapshot lineage -----------------------------------------------------------------
    def record_check(self, run_id: str, check: str, outcome: str,
                     baseline_run_id: str | None = None, message: str | None = None) -> None:
        """The latest outcome of ``check`` (volume | contracts) on snapshot ``run_id``."""
        if check not in CHECKS or outcome not in (PASSED, FAILED):
            raise ValueError(f"snapshot check {check!r}/{outcome!r} is not one of {CHECKS} x "
                             "passed/failed")
        self.con.execute(
            "INSERT OR REPLACE INTO snapshot_checks VALUES (?, ?, ?, ?, ?, ?)",
            [run_id, check, outcome, baseline_run_id, message,
             _naive_utc(dt.datetime.now(dt.UTC))])

    def accept(self, run_id: str, reason: str, by: str | None, host: str | None) -> None:
        """Record an operator's acceptance of a snapshot's volume drop."""
        self.con.execute(
            "INSERT OR REPLACE INTO snapshot_accepts VALUES (?, ?, ?, ?, ?)",
            [run_id, reason, _naive_utc(dt.datetime.now(dt.UTC)), by, host])

    def verdicts(self) -> dict[str, Verdict]:
        """Every snapshot that has a check or an acceptance recorded, by run id."""
        checks: dict[str, dict[str, tuple[str, str | None, str | None]]] = {}
        for run_id, check, outcome, base, msg in self.con.execute(
                "SELECT run_id, check_name, outcome, baseline_run_id, message "
                "FROM snapshot_checks").fetchall():
            checks.setdefault(run_id, {})[check] = (outcome, base, msg)
        accepts = {r: (reason, at, by) for r, reason, at, by in self.con.execute(
            "SELECT run_id, reason, accepted_at, accepted_by FROM snapshot_accepts").fetchall()}
        return {r: fold_verdict(r, checks.get(r, {}), accepts.get(r))
                for r in sorted(set(checks) | set(accepts))}

    def verdict(self, run_id: str) -> Verdict:
        return self.verdicts().get(run_id) or Verdict(run_id, UNVALIDATED)
