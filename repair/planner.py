"""``recon repair plan``: a reviewable plan of operations on the local database, from one
reconciled run's ``auto`` findings and that run's snapshot.

The plan is JSON (the contract with ``repair.plan``, README "Repair plans") plus a human
summary. ``human`` findings are listed under ``needs_a_person`` and never become operations;
``pending`` findings (grace window) are left for a later run. Nothing here writes anywhere but
the plan file: planning is always safe.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import polars as pl

from core.config import redact_url
from core.errors import ReconError
from core.layout import DRIFT_FILE, run_dir
from reconcile.engine import resolve_snapshot
from reconcile.load import open_snapshot_db
from reconcile.rules import PREPARE_SQL, prepare
from repair.steps import OP_COLUMNS, STEPS, all_steps_sql

# the plan format's version; repair.plan.SCHEMA_VERSION reads it (2: the target's
# identity, copied from the snapshot, in "local_identity")
SCHEMA_VERSION = 2
RESOLVED_BY_ROWS = ("D08", "D09")  # rule findings the row operations of their version fix


class PlanError(ReconError):
    """A repair plan cannot be made for this run."""


def _validation(data_dir: Path, run_id: str) -> str:
    """'failed' when recon's state recorded failing error-severity checks for the run,
    'passed' when it recorded checks, 'not_run' otherwise."""
    from core.state import state_path

    path = state_path(data_dir)
    if not path.is_file():
        return "not_run"
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables"
                                            ).fetchall()}
        if "check_results" not in tables:
            return "not_run"
        rows = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE outcome IN ('failed', 'error') AND "
            "severity = 'error') FROM check_results WHERE run_id = ?", [run_id]).fetchall()
    finally:
        con.close()
    total, bad = rows[0]
    return "failed" if bad else ("passed" if total else "not_run")


def build_plan(data_dir: Path | str, run_id: str | None = None, *, only: str | None = None,
               local_database_url: str = "", now: dt.datetime | None = None) -> dict[str, Any]:
    """The plan for ``run_id`` (default: the latest reconciled complete snapshot). ``only``
    narrows it to one object/table name or one rule id."""
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
    db = open_snapshot_db(snap)
    try:
        con = db.con
        con.register("_drift", drift.to_arrow())
        con.execute("CREATE TEMP TABLE findings AS SELECT * FROM _drift")
        con.execute("CREATE TEMP TABLE auto AS SELECT * FROM findings WHERE action = 'auto'")
        scope = snap.manifest.scope
        prepare(con, db.as_of.isoformat(sep=" "), scope)
        for sql in PREPARE_SQL if scope == "all" else ():
            con.execute(sql)
        parts = [f"SELECT {OP_COLUMNS} FROM ({q})" for q in all_steps_sql(stamp, scope)]
        order = " ".join(f"WHEN '{s}' THEN {i}" for i, s in enumerate(STEPS))
        ops = con.sql(
            f"SELECT row_number() OVER (ORDER BY CASE step {order} END, grp, ord, tbl, "
            f"CAST(key AS VARCHAR)) AS seq, step, grp AS \"group\", tbl AS \"table\", op, "
            f"CAST(key AS VARCHAR) AS key, CAST(before AS VARCHAR) AS before, "
            f"CAST(after AS VARCHAR) AS after, reason, findings "
            f"FROM ({' UNION ALL '.join(parts)}) ORDER BY seq").pl()
    finally:
        db.close()
    operations = [
        {"seq": r["seq"], "step": r["step"], "group": r["group"], "table": r["table"],
         "op": r["op"], "key": json.loads(r["key"]),
         "before": json.loads(r["before"]) if r["before"] is not None else None,
         "after": json.loads(r["after"]) if r["after"] is not None else None,
         "reason": r["reason"], "findings": list(r["findings"] or [])}
        for r in ops.iter_rows(named=True)]
    covered = {f for op in operations for f in op["findings"]}
    auto = drift.filter(pl.col("action") == "auto")
    by_rows = auto.filter(pl.col("rule").is_in(RESOLVED_BY_ROWS))["fingerprint"].to_list()
    unplanned = auto.filter(~pl.col("fingerprint").is_in(sorted(covered | set(by_rows))))
    person = drift.filter(pl.col("action") == "human")
    plan = {
        "schema_version": SCHEMA_VERSION,
        "plan_id": f"{now.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:6]}",
        "run_id": snap.run_id,
        "created_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "snapshot_complete": snap.complete,
        "validation": _validation(data_dir, snap.run_id),
        "local_database": redact_url(local_database_url) if local_database_url else "",
        # the database the snapshot's local rows came from (read in the export transaction),
        # never the current settings: apply refuses any other target
        "local_identity": snap.manifest.local_identity,
        "only": only,
        "operations": operations,
        "needs_a_person": [
            {k: r[k] for k in ("object", "key", "kind", "rule", "field", "severity",
                               "explanation", "subscription_name", "account_id", "fingerprint")}
            for r in person.sort("severity", "object", "key").iter_rows(named=True)],
        "not_planned": [
            {k: r[k] for k in ("object", "key", "kind", "rule", "field", "explanation")}
            for r in unplanned.iter_rows(named=True)],
    }
    plan["summary"] = summarize(plan)
    return plan


def summarize(plan: dict[str, Any]) -> dict[str, Any]:
    counts: dict[str, dict[str, int]] = {}
    samples: dict[str, list[dict[str, Any]]] = {}
    for op in plan["operations"]:
        t = f"{op['step']}/{op['table']}"
        counts.setdefault(t, {}).setdefault(op["op"], 0)
        counts[t][op["op"]] += 1
        s = samples.setdefault(f"{op['table']}.{op['op']}", [])
        if len(s) < 3:
            s.append({"key": op["key"], "before": op["before"], "after": op["after"],
                      "reason": op["reason"]})
    people: dict[str, int] = {}
    for f in plan["needs_a_person"]:
        k = f["rule"] or f["kind"]
        people[k] = people.get(k, 0) + 1
    return {"operations": len(plan["operations"]),
            "groups": len({op["group"] for op in plan["operations"]}),
            "by_step_table": counts, "samples": samples, "needs_a_person": people,
            "not_planned": len(plan["not_planned"])}


def summary_text(plan: dict[str, Any]) -> str:
    s = plan["summary"]
    lines = [f"repair plan {plan['plan_id']} for run {plan['run_id']}: {s['operations']:,} "
             f"operations in {s['groups']:,} transactions"
             + (f" (only {plan['only']})" if plan.get("only") else "")]
    for t, ops in s["by_step_table"].items():
        lines.append(f"  {t:<45} " + ", ".join(f"{k} {v:,}" for k, v in sorted(ops.items())))
    if s["needs_a_person"]:
        lines.append(f"needs a person ({sum(s['needs_a_person'].values()):,}, never repaired "
                     "automatically): " + ", ".join(
                         f"{k} {v}" for k, v in sorted(s["needs_a_person"].items())))
    if s["not_planned"]:
        lines.append(f"not planned: {s['not_planned']} auto findings without an operation "
                     "(see not_planned in the plan)")
    return "\n".join(lines)


def write_plan(plan: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(plan, indent=1, sort_keys=False, default=str) + "\n")
    tmp.replace(path)
    return path
