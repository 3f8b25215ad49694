"""A complete snapshot as one DuckDB connection: views over its Parquet files, nothing copied.

Schemas (so the two sides can never be confused and every query says which it reads):

=========  ==========================================================================
``zuora``  one view per catalogue object, named like the Zuora object (``Subscription``)
``local``  one view per local table (``zuora_local_subscriptions``, ``orders``, …)
``derive`` the catalog as the *derivation* of order columns needs it: Zuora's catalog plus
           the rows only the local cache still has (a plan deleted from Zuora while
           subscriptions use it, D23, must not make every order on it look stale)
=========  ==========================================================================

``search_path`` is ``zuora,local`` so catalogue SQL written with bare names (the diff's
normalisation, the Contact scope) resolves to the right side. Rows quarantined by the contracts
(issue 5) are hidden from both sides of their object here, and listed in ``quarantine``, so the
diff reports them as quarantined, never as missing.
"""

from __future__ import annotations

import datetime as dt
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from core.catalog import LOCAL_TABLES, OBJECTS, get
from core.errors import ReconError
from core.layout import DataLayout
from core.localdb.schema import all_tables
from core.snapshot import Snapshot, parse_utc
from core.state import FAILED, StateDB
from expectations.quarantine import QUARANTINE_SCHEMA


class ReconcileError(ReconError):
    """The reconciler cannot run on what it was given (a failed, partial or unreadable
    snapshot); nothing is reconciled."""


@dataclass
class SnapshotDB:
    """An open snapshot: the connection, the snapshot, and the instant its data is as of."""

    con: duckdb.DuckDBPyConnection
    snapshot: Snapshot
    as_of: dt.datetime  # naive UTC: when the Zuora export started
    quarantined: int
    # (as_of, scope, with the order derivation) the rules' helper relations were built for
    # (``reconcile.rules.prepare_rules``), None until then: a planner given this connection
    # after the reconciliation reuses them
    prepared: tuple[str, str, bool] | None = None
    # the in-memory database attached to the process's shared instance (``shared=True``),
    # detached on close; None: the connection owns its own instance
    attached: str | None = None

    def close(self) -> None:
        if self.attached is not None:
            try:
                self.con.execute("USE memory")
                self.con.execute(f"DETACH {self.attached}")
            finally:
                self.con.close()
            return
        self.con.close()


_SHARED: duckdb.DuckDBPyConnection | None = None
_SHARED_LOCK = threading.Lock()


def _shared_instance() -> duckdb.DuckDBPyConnection:
    """The process's DuckDB instance for small snapshots (a targeted sync's), one thread:
    starting an instance costs about 30 ms, a sync's whole reconcile of a few rows not
    much more, so each sync attaches an in-memory database of its own to this one instead
    (1–2 ms) and detaches it when done. Its settings are the instance's, for every user."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = duckdb.connect(config={"threads": 1, "preserve_insertion_order": False})
        return _SHARED


def _lit(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def scope_objects(snapshot: Snapshot) -> list:
    """The catalogue objects a snapshot covers (``Manifest.scope``)."""
    if snapshot.manifest.scope == "catalog":
        return [o for o in OBJECTS if o.group == "catalog"]
    return list(OBJECTS)


def scope_tables(snapshot: Snapshot) -> list[str]:
    if snapshot.manifest.scope == "catalog":
        return [o.table for o in scope_objects(snapshot)] + ["zuora_local_rate_plans"]
    return all_tables()


def check_reconcilable(snapshot: Snapshot) -> None:
    """Refuse anything but a complete snapshot whose files are all present: an empty or partial
    export must never look like "everything was deleted"."""
    m = snapshot.manifest
    if not snapshot.complete:
        why = f" ({m.error_type + ': ' if m.error_type else ''}{m.error})" if m.error else ""
        raise ReconcileError(
            f"snapshot {snapshot.path.name} is {m.status or 'incomplete'}{why}; only complete "
            "snapshots are reconciled — run `recon extract` again")
    refuse_failed_verdict(snapshot)
    if m.scope not in ("all", "catalog"):
        raise ReconcileError(f"snapshot {snapshot.run_id} covers only part of the catalogue "
                             f"(scope {m.scope!r}); it cannot be reconciled")
    missing = [str(p) for p in
               [snapshot.zuora_path(o.name) for o in scope_objects(snapshot)]
               + [snapshot.local_path(t) for t in scope_tables(snapshot)] if not p.is_file()]
    if missing:
        raise ReconcileError(
            f"snapshot {snapshot.run_id} is partial: {len(missing)} file(s) missing, e.g. "
            f"{missing[0]}; not reconciled")
    for rel, meta in m.files.items():
        p = snapshot.path / rel
        if p.is_file() and p.stat().st_size != meta.get("bytes", p.stat().st_size):
            raise ReconcileError(f"snapshot {snapshot.run_id}: {rel} does not have the size its "
                                 "manifest records (truncated or overwritten); not reconciled")


def refuse_failed_verdict(snapshot: Snapshot) -> None:
    """A complete snapshot whose lineage verdict is *failed* (its volume check, its Zuora
    contracts or its quarantine share failed) is never reconciled: repairing from half an
    export would delete good local rows. Reads recon's state beside the snapshot (DATA/), and
    only when one exists: a snapshot nobody validated is not refused here."""
    data_dir = snapshot.path.parent.parent
    if not DataLayout(data_dir).state_file.is_file():
        return
    with StateDB(data_dir) as st:
        v = st.verdict(snapshot.run_id)
    if v.verdict == FAILED:
        hint = (f"`recon snapshots accept {snapshot.run_id} --reason TEXT` if Zuora really "
                "lost those rows, else run `recon extract` again"
                if v.volume == FAILED and v.contracts != FAILED else "run `recon extract` again")
        raise ReconcileError(f"snapshot {snapshot.run_id} failed validation "
                             f"({v.message or 'see `recon snapshots`'}); it is never reconciled "
                             f"— {hint}")


def snapshot_time(snapshot: Snapshot) -> dt.datetime:
    """The instant the snapshot's Zuora data is as of (naive UTC)."""
    m = snapshot.manifest
    t = parse_utc(m.started_at) or parse_utc(m.finished_at)
    if t is None:
        raise ReconcileError(f"snapshot {snapshot.run_id}: manifest has no start time")
    return t.astimezone(dt.UTC).replace(tzinfo=None)


def open_snapshot_db(snapshot: Snapshot, quarantine: pl.DataFrame | None = None, *,
                     threads: int | None = None, memory_limit: str | None = None,
                     shared: bool = False) -> SnapshotDB:
    """``snapshot``'s views in a DuckDB connection (see the module doc). ``shared``: in an
    in-memory database attached to the process's shared single-threaded instance
    (:func:`_shared_instance`; ``threads`` and ``memory_limit`` are then the instance's) —
    for a snapshot of a few rows opened many times a minute (a callout worker's syncs)."""
    check_reconcilable(snapshot)
    attached = None
    if shared:
        con = _shared_instance().cursor()
        attached = f"snap_{secrets.token_hex(8)}"
        con.execute(f"ATTACH ':memory:' AS {attached}")
        con.execute(f"USE {attached}")
    else:
        con = duckdb.connect()
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        if memory_limit:
            con.execute(f"SET memory_limit = '{memory_limit}'")
        con.execute("SET preserve_insertion_order = false")
    try:
        return _open(con, snapshot, quarantine, attached)
    except BaseException:
        SnapshotDB(con, snapshot, dt.datetime.min, 0, attached=attached).close()
        raise


def _open(con: duckdb.DuckDBPyConnection, snapshot: Snapshot,
          quarantine: pl.DataFrame | None, attached: str | None) -> SnapshotDB:
    q = quarantine if quarantine is not None else pl.DataFrame(schema=QUARANTINE_SCHEMA)
    q = q.select([pl.col(c).cast(t) if c in q.columns else pl.lit(None, t).alias(c)
                  for c, t in QUARANTINE_SCHEMA.items()])
    con.register("_q", q.to_arrow())
    con.execute("CREATE TABLE quarantine AS SELECT * FROM _q")
    con.unregister("_q")
    hidden = {r[0] for r in con.execute("SELECT DISTINCT object FROM quarantine").fetchall()}
    # zuora_all / local_all: the same files with nothing hidden, for what must still be
    # *found* through a quarantined row (the subscription a finding belongs to, the records
    # a quarantined parent holds back: reconcile.quarantine)
    for schema in ("zuora", "local", "derive", "zuora_all", "local_all", "deleted"):
        con.execute(f"CREATE SCHEMA {schema}")
    # ``key IS NOT NULL``: a record quarantined without a readable key hides nothing (and a
    # NULL inside NOT IN would hide everything)
    for spec in scope_objects(snapshot):
        src = f"read_parquet({_lit(snapshot.zuora_path(spec.name))})"
        where = (f' WHERE "Id" NOT IN (SELECT key FROM main.quarantine WHERE object = '
                 f"'{spec.name}' AND key IS NOT NULL)" if spec.name in hidden else "")
        con.execute(f'CREATE VIEW zuora."{spec.name}" AS SELECT * FROM {src}{where}')
        con.execute(f'CREATE VIEW zuora_all."{spec.name}" AS SELECT * FROM {src}')
        # deletions an incremental export saw (Id, deleted_at): a local row deleted in Zuora
        # inside the grace window is pending, not drift (reconcile.annotate)
        gone = snapshot.deleted_path(spec.name)
        con.execute(f'CREATE VIEW deleted."{spec.name}" AS ' + (
            f'SELECT CAST("Id" AS VARCHAR) AS "Id", CAST(deleted_at AS TIMESTAMP) AS deleted_at '
            f"FROM read_parquet({_lit(gone)})" if gone.is_file() else
            'SELECT CAST(NULL AS VARCHAR) AS "Id", CAST(NULL AS TIMESTAMP) AS deleted_at '
            "WHERE false"))
    local_only = {t.name: t for t in LOCAL_TABLES}
    for table in scope_tables(snapshot):
        src = f"read_parquet({_lit(snapshot.local_path(table))})"
        where = ""
        spec = next((o for o in OBJECTS if o.table == table), None)
        if spec is not None and spec.name in hidden:
            where = (f" WHERE CAST({spec.key_column} AS VARCHAR) NOT IN (SELECT key FROM "
                     f"main.quarantine WHERE object = '{spec.name}' AND key IS NOT NULL)")
        elif table in local_only and table in hidden:
            pk = local_only[table].pk
            where = (f" WHERE CAST({pk} AS VARCHAR) NOT IN (SELECT key FROM main.quarantine WHERE "
                     f"object = '{table}' AND key IS NOT NULL)")
        con.execute(f"CREATE VIEW local.{table} AS SELECT * FROM {src}{where}")
        con.execute(f"CREATE VIEW local_all.{table} AS SELECT * FROM {src}")
    _derive_views(con)
    con.execute("SET search_path = 'zuora,local'")
    return SnapshotDB(con, snapshot, snapshot_time(snapshot), q.height, attached=attached)


def _derive_views(con: duckdb.DuckDBPyConnection) -> None:
    """Catalog relations for the order derivation: Zuora first, the local cache for plans and
    products Zuora no longer exports."""
    for obj in ("Product", "ProductRatePlan"):
        spec = get(obj)
        cols = [f for f in spec.stored_fields]
        z = ", ".join(f'"{f.name}"' for f in cols)
        lo = ", ".join(f'{f.column} AS "{f.name}"' for f in cols)
        con.execute(
            f'CREATE VIEW derive."{obj}" AS SELECT {z} FROM zuora."{obj}" UNION ALL '
            f"SELECT {lo} FROM local.{spec.table} WHERE {spec.key_column} NOT IN "
            f'(SELECT "Id" FROM zuora."{obj}")')
