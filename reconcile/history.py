"""Findings across runs, in recon's state (``DATA/state.duckdb``).

A finding's identity (its ``fingerprint``) is what it is about, not what the values are:
object, key, kind, rule, field. Against the previous reconciled run:

* not open there → ``new`` (``first_seen_run`` = this run);
* open there → ``persisting`` (open for two runs or more), ``first_seen_run`` carried over;
* open there and absent now → a ``resolved`` row in this run (with the run that resolved it);
* in the grace window → ``pending`` whatever its history (``first_seen_run`` still kept).

Statuses are computed from the stored rows of the previous run, never from counters, so
reconciling a run again replaces its rows and gives the same answer.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, TypedDict

import duckdb
import polars as pl

from core.state import StateDB, register_table, table_names
from reconcile.findings import DRIFT_SCHEMA

_DRIFT_COLS = ", ".join(
    f"{c} {'TIMESTAMP' if c == 'zuora_updated' else 'VARCHAR'}" for c in DRIFT_SCHEMA)

register_table("drift", f"CREATE TABLE IF NOT EXISTS drift ({_DRIFT_COLS})")
register_table("reconcile_runs", """
CREATE TABLE IF NOT EXISTS reconcile_runs (
  run_id        VARCHAR PRIMARY KEY,  -- = the snapshot's run id
  as_of         TIMESTAMP NOT NULL,   -- UTC instant the Zuora data is as of
  snapshot_mode VARCHAR,
  started_at    TIMESTAMP NOT NULL,
  finished_at   TIMESTAMP NOT NULL,
  duration_s    DOUBLE NOT NULL,
  grace_hours   DOUBLE NOT NULL,
  previous_run  VARCHAR,              -- the reconciled run statuses were computed against
  findings      BIGINT NOT NULL,      -- open findings (new + persisting + pending)
  summary       VARCHAR NOT NULL,     -- JSON counts (kind, action, status, severity, object)
  scope         VARCHAR DEFAULT 'all' -- all | catalog: history compares runs of one scope
)""")
# state files made before the scope column existed
register_table("reconcile_runs_scope", "ALTER TABLE reconcile_runs ADD COLUMN IF NOT EXISTS "
               "scope VARCHAR DEFAULT 'all'")
register_table("reconcile_object_stats", """
CREATE TABLE IF NOT EXISTS reconcile_object_stats (
  run_id VARCHAR, object VARCHAR, "table" VARCHAR, zuora_rows BIGINT, local_rows BIGINT,
  matched BIGINT, only_zuora BIGINT, only_local BIGINT, unequal BIGINT,
  columns_unequal BIGINT, seconds DOUBLE
)""")

FINGERPRINT = ("md5(concat_ws('|', object, key, kind, coalesce(rule, ''), "
               "coalesce(field, '')))")


def previous_run(state: StateDB, run_id: str, scope: str = "all") -> str | None:
    """The reconciled run this one's statuses are computed against: the latest earlier run
    of the same scope (a catalog-only run never resolves a nightly run's findings)."""
    rows = state.con.execute(
        "SELECT max(run_id) FROM reconcile_runs WHERE run_id < ? AND coalesce(scope, 'all') = ?",
        [run_id, scope]).fetchall()
    return rows[0][0] if rows else None


def with_history(con: duckdb.DuckDBPyConnection, state: StateDB | None, run_id: str,
                 grace_start: str, scope: str = "all") -> tuple[pl.DataFrame, str | None]:
    """This run's drift rows (statuses and first-seen filled, resolved rows added) from the
    temporary ``findings`` table of ``con`` and the previous run stored in ``state``. A
    finding in the temporary ``held`` table (``reconcile.events``: the event path has it in
    hand) is ``pending`` with the reason appended to its explanation. ``state`` None: no
    previous run (a keyed dataset's, as against an empty state)."""
    prev = previous_run(state, run_id, scope) if state is not None else None
    before = (state.con.sql(
        "SELECT fingerprint, first_seen_run, object, key, kind, rule, field, zuora_value, "
        "local_value, severity, action, explanation, drift_id, subscription_name, account_id, "
        "zuora_updated, evidence FROM drift WHERE run_id = ? AND status <> 'resolved'",
        params=[prev]).pl() if prev else None)
    schema = {c: t for c, t in DRIFT_SCHEMA.items() if c not in ("run_id", "status")}
    before = before if before is not None else pl.DataFrame(schema=schema)
    con.register("_before", before.to_arrow())
    try:
        out = con.sql(f"""
            WITH cur AS (SELECT *, {FINGERPRINT} AS fingerprint FROM findings)
            SELECT '{run_id}' AS run_id, c.object, c.key, c.kind, c.rule, c.field,
                   c.zuora_value, c.local_value, c.severity, c.action,
                   CASE WHEN c.zuora_updated >= TIMESTAMP '{grace_start}'
                             OR h.fingerprint IS NOT NULL THEN 'pending'
                        WHEN b.fingerprint IS NOT NULL THEN 'persisting' ELSE 'new' END
                       AS status,
                   coalesce(b.first_seen_run, '{run_id}') AS first_seen_run,
                   CASE WHEN h.reason IS NULL THEN c.explanation
                        ELSE c.explanation || ' (pending: ' || h.reason || ')' END
                       AS explanation,
                   c.drift_id, c.subscription_name, c.account_id, c.zuora_updated,
                   c.evidence, c.fingerprint
            FROM cur c LEFT JOIN _before b USING (fingerprint)
                 LEFT JOIN held h USING (fingerprint)
            UNION ALL
            SELECT '{run_id}', b.object, b.key, b.kind, b.rule, b.field, b.zuora_value,
                   b.local_value, b.severity, b.action, 'resolved', b.first_seen_run,
                   'resolved in this run: ' || b.explanation, b.drift_id, b.subscription_name,
                   b.account_id, b.zuora_updated, b.evidence, b.fingerprint
            FROM _before b WHERE b.fingerprint NOT IN (SELECT fingerprint FROM cur)""").pl()
    finally:
        con.unregister("_before")
    return out.select([pl.col(c).cast(t) for c, t in DRIFT_SCHEMA.items()]), prev


def store(state: StateDB, run_id: str, drift: pl.DataFrame, run: dict[str, Any],
          object_stats: pl.DataFrame) -> None:
    """Replace this run's rows in one transaction (re-running a run is idempotent)."""
    with state.transaction() as con:
        con.execute("DELETE FROM drift WHERE run_id = ?", [run_id])
        con.execute("DELETE FROM reconcile_runs WHERE run_id = ?", [run_id])
        con.execute("DELETE FROM reconcile_object_stats WHERE run_id = ?", [run_id])
        con.register("_d", drift.to_arrow())
        con.execute("INSERT INTO drift BY NAME SELECT * FROM _d")
        con.unregister("_d")
        con.register("_s", object_stats.with_columns(run_id=pl.lit(run_id)).to_arrow())
        con.execute("INSERT INTO reconcile_object_stats BY NAME SELECT * FROM _s")
        con.unregister("_s")
        cols = list(run)
        con.execute(
            f"INSERT INTO reconcile_runs ({', '.join(cols)}) VALUES "
            f"({', '.join('?' for _ in cols)})",
            [json.dumps(v, sort_keys=True) if isinstance(v, dict) else v for v in run.values()])


# -- typed readers (for the floors above: the report) -----------------------------------------
class ReconcileRunRow(TypedDict):
    """One ``reconcile_runs`` row as the readers return it (``summary`` parsed)."""

    run_id: str
    as_of: dt.datetime
    snapshot_mode: str | None
    started_at: dt.datetime
    finished_at: dt.datetime
    duration_s: float
    grace_hours: float
    previous_run: str | None
    findings: int
    summary: dict[str, Any]  # counts by kind, action, status, severity, object
    scope: str | None


def recent_runs(con: duckdb.DuckDBPyConnection, upto: str,
                limit: int) -> list[ReconcileRunRow]:
    """The last ``limit`` reconciled runs up to ``upto`` (included), oldest first; [] on a
    state file without the table. ``con``: :func:`core.state.open_read_only`'s."""
    if "reconcile_runs" not in table_names(con):
        return []
    rows = con.sql("SELECT * FROM (SELECT * FROM reconcile_runs WHERE run_id <= $r "
                   "ORDER BY run_id DESC LIMIT $n) ORDER BY run_id",
                   params={"r": upto, "n": limit}).pl().to_dicts()
    for r in rows:
        r["summary"] = json.loads(r["summary"]) if r.get("summary") else {}
    return rows  # type: ignore[return-value]


def latest_run(con: duckdb.DuckDBPyConnection, scope: str = "all") -> ReconcileRunRow | None:
    """The newest reconciled run of ``scope`` (None on a state file without one)."""
    if "reconcile_runs" not in table_names(con):
        return None
    rows = con.sql("SELECT * FROM reconcile_runs WHERE coalesce(scope, 'all') = $s "
                   "ORDER BY run_id DESC LIMIT 1", params={"s": scope}).pl().to_dicts()
    if not rows:
        return None
    rows[0]["summary"] = json.loads(rows[0]["summary"]) if rows[0].get("summary") else {}
    return rows[0]  # type: ignore[return-value]


def last_clean_run(con: duckdb.DuckDBPyConnection, upto: str) -> str | None:
    """The latest run up to ``upto`` whose summary counted no drift (None: none, or no
    table)."""
    if "reconcile_runs" not in table_names(con):
        return None
    clean = con.sql(
        "SELECT max(run_id) FROM reconcile_runs WHERE run_id <= $r AND "
        "coalesce(TRY_CAST(json_extract(summary, '$.drift') AS BIGINT), 1) = 0",
        params={"r": upto}).fetchall()
    return clean[0][0] if clean else None


def was_reconciled(con: duckdb.DuckDBPyConnection, run_id: str) -> bool:
    """Whether ``run_id`` has a ``reconcile_runs`` row."""
    return "reconcile_runs" in table_names(con) and bool(con.sql(
        "SELECT count(*) FROM reconcile_runs WHERE run_id = $r",
        params={"r": run_id}).fetchall()[0][0])


FINDING_STATUSES = ("new", "persisting", "pending", "resolved")


def latest_reconciled(con: duckdb.DuckDBPyConnection) -> str | None:
    """The newest reconciled run of any scope (None: none, or no table)."""
    if "reconcile_runs" not in table_names(con):
        return None
    return con.sql("SELECT max(run_id) FROM reconcile_runs").fetchall()[0][0]


def findings_of(con: duckdb.DuckDBPyConnection, run_id: str, *,
                statuses: tuple[str, ...] = FINDING_STATUSES, rule: str | None = None,
                obj: str | None = None) -> pl.DataFrame:
    """A reconciled run's findings as stored (``drift`` rows: the drift output's columns),
    filtered in SQL: ``statuses``; ``rule`` matches the rule or the drift id (``D11``),
    ``obj`` the object or local table, both case-insensitively. Ordered as a person reads
    them: severity, object, rule, key. Empty on a state file without the table."""
    schema = {c: t for c, t in DRIFT_SCHEMA.items()}
    if "drift" not in table_names(con):
        return pl.DataFrame(schema=schema)
    where = ["run_id = $run", "list_contains($statuses, status)"]
    params: dict[str, Any] = {"run": run_id, "statuses": list(statuses)}
    if rule:
        where.append("(upper(rule) = upper($rule) OR upper(drift_id) = upper($rule))")
        params["rule"] = rule
    if obj:
        where.append("lower(object) = lower($obj)")
        params["obj"] = obj
    return con.sql(
        f"SELECT * FROM drift WHERE {' AND '.join(where)} ORDER BY CASE severity WHEN "
        "'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END, object, "
        "coalesce(rule, drift_id), key, field", params=params).pl()
