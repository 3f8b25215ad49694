"""The repair audit, kept in the LOCAL database next to the rows it describes (not part of the
catalogue schema; recon's own objects, created and upgraded by ``recon db stamp``/``db init``
through the migrations of :mod:`core.localdb.recon_objects`):

* ``recon_repair_applies``: one row per apply or revert (written in its own small transactions:
  ``running`` at the start, ``complete``/``partial``/``failed`` at the end, ``refused`` when a
  guard refused an apply given ``--yes``);
* ``recon_repair_audit``: one row per applied operation with the row's full before and after
  images as JSON text, inserted in the same transaction as the change itself — so the audit
  and the data can never disagree, even after ``kill -9``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import polars as pl

from core.localdb import recon_objects
from core.localdb.connect import LocalDB
from core.localdb.dialect import Dialect

APPLIES, AUDIT = recon_objects.APPLIES, recon_objects.AUDIT
# the DDL is a migration on the shared floor (core.localdb.recon_objects); these are the
# tables' first versions, kept for readers of this module
APPLIES_DDL, AUDIT_DDL = recon_objects.APPLIES_DDL_V1, recon_objects.AUDIT_DDL_V1

APPLY_COLUMNS = ("apply_id", "kind", "reverts_apply_id", "plan_id", "run_id", "plan_path",
                 "started_at", "finished_at", "status", "ops_planned", "ops_applied",
                 "ops_skipped", "dry_run", "host", "pid", "os_user", "message")
AUDIT_COLUMNS = ("apply_id", "seq", "batch", "table_name", "op", "key", "before", "after",
                 "applied_at")
_APPLY_SCHEMA = {"apply_id": pl.String, "kind": pl.String, "reverts_apply_id": pl.String,
                 "plan_id": pl.String, "run_id": pl.String, "plan_path": pl.String,
                 "started_at": pl.Datetime("us"), "finished_at": pl.Datetime("us"),
                 "status": pl.String, "ops_planned": pl.Int64, "ops_applied": pl.Int64,
                 "ops_skipped": pl.Int64, "dry_run": pl.Boolean, "host": pl.String,
                 "pid": pl.Int64, "os_user": pl.String, "message": pl.String}
_AUDIT_SCHEMA = {"apply_id": pl.String, "seq": pl.Int64, "batch": pl.Int32,
                 "table_name": pl.String, "op": pl.String, "key": pl.String,
                 "before": pl.String, "after": pl.String, "applied_at": pl.Datetime("us")}


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Session:
    """One :class:`LocalDB` as the executor uses it: its SQL differences are answered by
    ``dialect`` (:class:`~core.localdb.dialect.Dialect`); what stays here is the drivers' bulk
    paths (COPY or Arrow) and transaction handles."""

    def __init__(self, db: LocalDB) -> None:
        self.db = db
        self.dialect: Dialect = db.dialect
        self.pg = db.dialect is Dialect.POSTGRES  # the driver is psycopg (COPY, Rollback)
        self.raw = db.raw
        self._n = 0

    @property
    def ph(self) -> str:
        return self.dialect.placeholder

    def run(self, sql: str, params: tuple | list | None = None) -> None:
        self.raw.execute(sql, params)

    def rows(self, sql: str, params: tuple | list | None = None) -> list[tuple]:
        return self.dialect.fetch(self.raw, sql, params)

    def temp_name(self, prefix: str) -> str:
        self._n += 1
        return f"_recon_{prefix}{self._n}"

    def load_temp(self, name: str, cols: list[tuple[str, str]], rows: list[tuple]) -> None:
        """A temporary table ``name`` with typed ``cols`` filled from text ``rows`` (COPY on
        PostgreSQL, Arrow on DuckDB); dropped at the end of the transaction on PostgreSQL and
        by :meth:`drop_temp` on both."""
        names = ", ".join(c for c, _ in cols)
        if self.pg:
            defs = ", ".join(f"{c} {t}" for c, t in cols)
            self.run(f"CREATE TEMP TABLE {name} ({defs}) ON COMMIT DROP")
            with self.raw.cursor() as cur, cur.copy(f"COPY {name} ({names}) FROM STDIN") as cp:
                for r in rows:
                    cp.write_row(r)
            self.run(f"ANALYZE {name}")
            return
        frame = pl.DataFrame(rows, schema=[(c, pl.String) for c, _ in cols], orient="row")
        view = f"{name}_arrow"
        self.raw.register(view, frame.to_arrow())
        try:
            casts = ", ".join(f"CAST({c} AS {t}) AS {c}" for c, t in cols)
            self.run(f"CREATE TEMP TABLE {name} AS SELECT {casts} FROM {view}")
        finally:
            self.raw.unregister(view)

    def drop_temp(self, name: str) -> None:
        """Drop a temporary table of :meth:`load_temp`, unless the transaction's end does."""
        if not self.dialect.temp_tables_drop_at_commit:
            self.run(f"DROP TABLE IF EXISTS {name}")

    @contextmanager
    def transaction(self, rollback: bool = False) -> Iterator[None]:
        """One transaction; ``rollback=True`` always rolls back (dry runs)."""
        if self.pg:
            import psycopg

            with self.raw.transaction() as tx:
                yield
                if rollback:
                    raise psycopg.Rollback(tx)
            return
        self.raw.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self.raw.execute("ROLLBACK")
            raise
        self.raw.execute("ROLLBACK" if rollback else "COMMIT")

    def table_exists(self, name: str) -> bool:
        return bool(self.rows(self.dialect.table_exists_sql, [name])[0][0])

    def count_rows(self, table: str) -> int:
        return int(self.rows(f"SELECT count(*) FROM {table}")[0][0])


# -- the applies table -----------------------------------------------------------------------
def ensure_tables(sess: Session) -> None:
    """Refuse to write unless recon's objects are at this recon's schema version (they are
    created and upgraded by ``recon db stamp``, never implicitly by an apply)."""
    recon_objects.require_current(sess.db)


def insert_apply(sess: Session, row: dict[str, Any]) -> None:
    cols = [c for c in (*APPLY_COLUMNS, "target_identity") if c in row]
    marks = ", ".join([sess.ph] * len(cols))
    with sess.transaction():
        sess.run(f"INSERT INTO {APPLIES} ({', '.join(cols)}) VALUES ({marks})",
                 [row[c] for c in cols])


def finish_apply(sess: Session, apply_id: str, status: str, applied: int, skipped: int,
                 message: str | None) -> None:
    p = sess.ph
    with sess.transaction():
        sess.run(f"UPDATE {APPLIES} SET status = {p}, finished_at = {p}, ops_applied = {p}, "
                 f"ops_skipped = {p}, message = {p} WHERE apply_id = {p}",
                 [status, utc_now(), applied, skipped, message, apply_id])


def mark_abandoned(sess: Session) -> list[str]:
    """Applies still ``running`` while we hold the lock belong to a process that died; mark
    them ``failed`` (their committed batches are in the audit, the rest never happened)."""
    if not sess.table_exists(APPLIES):
        return []
    ids = [r[0] for r in sess.rows(f"SELECT apply_id FROM {APPLIES} WHERE status = 'running'")]
    if ids:
        n = {i: sess.rows(f"SELECT count(*) FROM {AUDIT} WHERE apply_id = {sess.ph}", [i])[0][0]
             for i in ids}
        with sess.transaction():
            for i in ids:
                sess.run(
                    f"UPDATE {APPLIES} SET status = 'failed', finished_at = {sess.ph}, "
                    f"ops_applied = {sess.ph}, message = {sess.ph} WHERE apply_id = {sess.ph}",
                    [utc_now(), n[i], "abandoned: the process ended before finishing (killed?); "
                     f"{n[i]} operations were committed (see {AUDIT}); re-running the same plan "
                     "applies the rest", i])
    return ids


def get_apply(sess: Session, apply_id: str) -> dict[str, Any] | None:
    """One apply row, with ``target_identity`` (JSON text; None for an apply recorded before
    identities existed)."""
    if not sess.table_exists(APPLIES):
        return None
    cols = (*APPLY_COLUMNS, "target_identity")
    rows = sess.rows(f"SELECT {', '.join(cols)} FROM {APPLIES} WHERE apply_id = "
                     f"{sess.ph}", [apply_id])
    return dict(zip(cols, rows[0], strict=True)) if rows else None


def list_applies(sess: Session) -> pl.DataFrame:
    if not sess.table_exists(APPLIES):
        return pl.DataFrame(schema=_APPLY_SCHEMA)
    rows = sess.rows(f"SELECT {', '.join(APPLY_COLUMNS)} FROM {APPLIES} "
                     "ORDER BY started_at, apply_id")
    return pl.DataFrame(rows, schema=_APPLY_SCHEMA, orient="row")


# -- audit rows ------------------------------------------------------------------------------
def write_audit(sess: Session, rows: list[tuple]) -> None:
    """Insert audit rows (tuples in :data:`AUDIT_COLUMNS` order) inside the caller's
    transaction — the batch's."""
    if not rows:
        return
    cols = ", ".join(AUDIT_COLUMNS)
    if sess.pg:
        with sess.raw.cursor() as cur, cur.copy(f"COPY {AUDIT} ({cols}) FROM STDIN") as cp:
            for r in rows:
                cp.write_row(r)
        return
    frame = pl.DataFrame(rows, schema=_AUDIT_SCHEMA, orient="row")
    sess.raw.register("_recon_audit_rows", frame.to_arrow())
    try:
        sess.run(f"INSERT INTO {AUDIT} ({cols}) SELECT {cols} FROM _recon_audit_rows")
    finally:
        sess.raw.unregister("_recon_audit_rows")


def read_audit(sess: Session, apply_id: str) -> pl.DataFrame:
    if not sess.table_exists(AUDIT):
        return pl.DataFrame(schema=_AUDIT_SCHEMA)
    rows = sess.rows(f"SELECT {', '.join(AUDIT_COLUMNS)} FROM {AUDIT} WHERE apply_id = "
                     f"{sess.ph} ORDER BY seq", [apply_id])
    return pl.DataFrame(rows, schema=_AUDIT_SCHEMA, orient="row")


def list_applies_empty() -> pl.DataFrame:
    return pl.DataFrame(schema=_APPLY_SCHEMA)
