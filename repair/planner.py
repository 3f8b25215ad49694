"""``recon repair plan``: a reviewable plan of operations on the local database, from one
reconciled run's ``auto`` findings and that run's snapshot.

The planner builds the typed :class:`repair.plan.Plan` (the model it owns, README "Repair
plans"); :func:`repair.plan.write_plan` writes it, :func:`summary_text` renders the human
summary. ``human`` findings are listed under ``needs_a_person`` and never become operations;
``pending`` findings (grace window) are left for a later run. Nothing here writes anywhere but
the plan file: planning is always safe.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import duckdb
import polars as pl

from core.config import redact_url
from core.errors import ReconError
from core.layout import DRIFT_FILE, run_dir
from core.localdb.identity import DatabaseIdentity
from expectations.results import read_validation
from reconcile.engine import resolve_snapshot
from reconcile.load import SnapshotDB, open_snapshot_db
from reconcile.rules import prepare_rules, reads_order_relations
from repair.plan import (
    OPS_SCHEMA,
    SCHEMA_VERSION,
    STEPS,
    Op,
    PersonFinding,
    Plan,
    PlanFormatError,
    UnplannedFinding,
    ops_from_frame,
)
from repair.steps import OP_COLUMNS, Present, all_steps_sql

RESOLVED_BY_ROWS = ("D08", "D09")  # rule findings the row operations of their version fix


class PlanError(ReconError):
    """A repair plan cannot be made for this run."""


def build_plan(data_dir: Path | str, run_id: str | None = None, *, only: str | None = None,
               local_database_url: str = "", now: dt.datetime | None = None,
               db: SnapshotDB | None = None) -> Plan:
    """The plan for ``run_id`` (default: the latest reconciled complete snapshot). ``only``
    narrows it to one object/table name or one rule id. ``db``: the snapshot opened already
    (a sync's, reconciled in it a moment ago), planned in and left open; None: opened here
    and closed (opening it is a good part of a targeted sync's plan)."""
    data_dir = Path(data_dir)
    snap = resolve_snapshot(data_dir, run_id)
    drift_path = run_dir(data_dir, snap.run_id) / DRIFT_FILE
    if not drift_path.is_file():
        raise PlanError(f"run {snap.run_id} has not been reconciled (no {drift_path}); run "
                        "`recon reconcile --run " + snap.run_id + "` first")
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(tzinfo=None)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%f")
    drift = pl.read_parquet(drift_path).filter(pl.col("status").is_in(["new", "persisting"]))
    if only:
        drift = drift.filter((pl.col("object") == only) | (pl.col("rule") == only)
                             | (pl.col("drift_id") == only))
        if drift.height == 0:
            raise PlanError(f"--only {only!r} matches no open finding of run {snap.run_id} "
                            "(give an object, a local table or a rule id such as D11)")
    own = db is None
    if db is None:
        db = open_snapshot_db(snap)
    elif db.snapshot.run_id != snap.run_id:
        raise PlanError(f"build_plan was given {db.snapshot.run_id}'s database for run "
                        f"{snap.run_id}")
    try:
        con = db.con
        con.register("_drift", drift.to_arrow())
        # OR REPLACE: a connection handed over still holds the reconciliation's findings
        con.execute("CREATE OR REPLACE TEMP TABLE findings AS SELECT * FROM _drift")
        con.execute("CREATE OR REPLACE TEMP TABLE auto AS SELECT * FROM findings "
                    "WHERE action = 'auto'")
        con.unregister("_drift")
        scope = snap.manifest.scope
        parts = [f"SELECT {OP_COLUMNS} FROM ({q})"
                 for q in all_steps_sql(stamp, scope, Present.of(con))]
        # the order derivation's relations only when a step reads them
        orders = reads_order_relations(*parts)
        as_of = db.as_of.isoformat(sep=" ")
        if (db.prepared is None or db.prepared[:2] != (as_of, scope)
                or (orders and not db.prepared[2])):  # else the reconcile's
            db.prepared = prepare_rules(con, as_of, scope, orders=orders)
        ops = operations_frame(con, parts)
    finally:
        if own:
            db.close()
    operations = parse_operations(ops, snap.run_id)
    covered = {f for op in operations for f in op.findings}
    auto = drift.filter(pl.col("action") == "auto")
    by_rows = auto.filter(pl.col("rule").is_in(RESOLVED_BY_ROWS))["fingerprint"].to_list()
    unplanned = auto.filter(~pl.col("fingerprint").is_in(sorted(covered | set(by_rows))))
    person = drift.filter(pl.col("action") == "human")
    try:
        # the database the snapshot's local rows came from (read in the export transaction),
        # never the current settings: apply refuses any other target
        identity = (DatabaseIdentity.from_dict(snap.manifest.local_identity)
                    if snap.manifest.local_identity is not None else None)
    except ValueError as e:
        raise PlanError(f"the manifest of run {snap.run_id} has an invalid local_identity: "
                        f"{e}") from None
    return Plan(
        schema_version=SCHEMA_VERSION,
        plan_id=f"{now.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:6]}",
        run_id=snap.run_id,
        created_at=now.replace(microsecond=0, tzinfo=dt.UTC),
        snapshot_complete=snap.complete,
        validation=read_validation(data_dir, snap.run_id).verdict,
        local_database=redact_url(local_database_url) if local_database_url else "",
        local_identity=identity,
        only=only,
        operations=operations,
        needs_a_person=[
            PersonFinding(**{k: r[k] for k in ("object", "key", "kind", "rule", "field",
                                               "severity", "explanation", "subscription_name",
                                               "account_id", "fingerprint")})
            for r in person.sort("severity", "object", "key").iter_rows(named=True)],
        not_planned=[
            UnplannedFinding(**{k: r[k] for k in ("object", "key", "kind", "rule", "field",
                                                  "explanation")})
            for r in unplanned.iter_rows(named=True)],
    )


def operations_frame(con: duckdb.DuckDBPyConnection, parts: list[str],
                     first: str | None = None) -> pl.DataFrame:
    """The operations the step queries ``parts`` (each selecting ``OP_COLUMNS``) make, as
    plan rows: ``seq`` (1…, in step order, then group, then the query's own order), step,
    group, table, op, key/before/after as JSON text, reason, findings. ``first``: SQL over
    the rows ranking groups inside a step before the group name does (the backfill's people
    before the orders that reference them)."""
    if not parts:
        return pl.DataFrame(schema=OPS_SCHEMA)
    order = " ".join(f"WHEN '{s}' THEN {i}" for i, s in enumerate(STEPS))
    return con.sql(
        f"SELECT row_number() OVER (ORDER BY CASE step {order} END, {first or '0'}, grp, ord, "
        f"tbl, CAST(key AS VARCHAR)) AS seq, step, grp AS \"group\", tbl AS \"table\", op, "
        f"CAST(key AS VARCHAR) AS key, CAST(before AS VARCHAR) AS before, "
        f"CAST(after AS VARCHAR) AS after, reason, findings "
        f"FROM ({' UNION ALL '.join(parts)}) ORDER BY seq").pl()


def parse_operations(ops: pl.DataFrame, run_id: str) -> list[Op]:
    """Plan rows (:func:`operations_frame`) → validated, typed operations; an invalid one is
    a planner bug, raised as :class:`PlanError` naming it (nothing is written)."""
    try:
        return ops_from_frame(ops)
    except PlanFormatError as e:  # a planner bug: say which operation, write nothing
        raise PlanError(f"the planner made an invalid operation for run {run_id}: {e}") from e


def summary_text(plan: Plan) -> str:
    """The human summary (``repair-plan.txt``) of a plan."""
    s = plan.summary
    lines = [f"repair plan {plan.plan_id} for run {plan.run_id}: {s.operations:,} "
             f"operations in {s.groups:,} transactions"
             + (f" (only {plan.only})" if plan.only else "")]
    for t, ops in s.by_step_table.items():
        lines.append(f"  {t:<45} " + ", ".join(f"{k} {v:,}" for k, v in sorted(ops.items())))
    if s.needs_a_person:
        lines.append(f"needs a person ({sum(s.needs_a_person.values()):,}, never repaired "
                     "automatically): " + ", ".join(
                         f"{k} {v}" for k, v in sorted(s.needs_a_person.items())))
    if s.not_planned:
        lines.append(f"not planned: {s.not_planned} auto findings without an operation "
                     "(see not_planned in the plan)")
    return "\n".join(lines)
