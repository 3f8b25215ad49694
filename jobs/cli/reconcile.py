"""``recon reconcile [--run RUN] [--json]``: diff a complete snapshot and apply the rules.

``--run`` takes a run id (:func:`jobs.runs.resolve_run`: a job run's attempt that reconciled)
or a snapshot id. A snapshot extracted by hand (``recon extract``) is, once reconciled, a run
in the history: job ``reconcile``, trigger ``manual``, its id the snapshot's
(:func:`jobs.runs.record_manual`); a job's snapshot reconciled again stays that job's run."""

from __future__ import annotations

import argparse
from typing import Any

from jobs.cli.argtypes import HOURS
from jobs.cli.common import EXIT_DRIFT, EXIT_OK, add_fail_on_drift, add_json, add_run
from jobs.cli.common import progress_of as _progress
from jobs.cli.common import settings_of as _settings


def print_reconcile(result) -> None:  # noqa: ANN001 (reconcile.engine.ReconcileResult)
    """A terminal summary: per object what was compared and found, then totals."""
    import polars as pl

    found = result.drift.filter(pl.col("status") != "resolved")
    per = found.group_by("object").agg(
        findings=pl.len(), auto=(pl.col("action") == "auto").sum(),
        human=(pl.col("action") == "human").sum(), pending=(pl.col("status") == "pending").sum())
    stats = result.object_stats.select("object", "zuora_rows", "local_rows", "only_zuora",
                                       "only_local", "unequal")
    table = stats.join(per, on="object", how="full", coalesce=True).fill_null(0)
    width = max(len(o) for o in table["object"]) if table.height else 6
    print(f"  {'object':<{width}} {'zuora':>10} {'local':>10} {'missing':>8} {'orphan':>7} "
          f"{'unequal':>8} {'findings':>9} {'auto':>6} {'human':>6} {'pending':>8}")
    for r in table.iter_rows(named=True):
        print(f"  {r['object']:<{width}} {r['zuora_rows']:>10,} {r['local_rows']:>10,} "
              f"{r['only_zuora']:>8,} {r['only_local']:>7,} {r['unequal']:>8,} "
              f"{r['findings']:>9,} {r['auto']:>6,} {r['human']:>6,} {r['pending']:>8,}")
    s = result.summary
    by = s["by_status"]
    print(f"run {result.run_id}: {s['drift']:,} findings of drift "
          f"({by.get('new', 0):,} new, {by.get('persisting', 0):,} persisting), "
          f"{by.get('pending', 0):,} pending (grace window), {by.get('resolved', 0):,} resolved "
          f"since {result.previous_run or 'no previous run'}; "
          f"{s['by_action'].get('auto', 0):,} auto, {s['by_action'].get('human', 0):,} need a "
          f"person; {result.seconds:.1f}s")
    print(f"drift: {result.path / 'drift.parquet'}")


def reconcile_document(result, recorded_as: str | None) -> dict:  # noqa: ANN001
    """``recon reconcile --json`` (docs/json/reconcile.schema.json): the run, its totals and
    per-object figures, where the drift is."""
    import polars as pl

    from core.layout import DRIFT_FILE

    s = result.summary
    found = result.drift.filter(pl.col("status") != "resolved")
    per = found.group_by("object").agg(
        findings=pl.len(), auto=(pl.col("action") == "auto").sum(),
        human=(pl.col("action") == "human").sum(), pending=(pl.col("status") == "pending").sum())
    stats = result.object_stats.select(
        "object", "zuora_rows", "local_rows", pl.col("only_zuora").alias("missing"),
        pl.col("only_local").alias("orphan"), "unequal")
    objects = stats.join(per, on="object", how="full", coalesce=True).fill_null(0).sort("object")
    return {"run_id": recorded_as or result.run_id, "snapshot_run": result.run_id,
            "previous_run": result.previous_run, "seconds": round(result.seconds, 3),
            "findings": int(s["findings"]), "drift": int(s["drift"]),
            "by_status": s["by_status"], "by_action": s["by_action"],
            "objects": objects.to_dicts(), "drift_path": str(result.path / DRIFT_FILE)}


def cmd_reconcile(args: argparse.Namespace) -> int:
    import time

    from core.inbox import read_activity
    from core.state import StateDB
    from jobs import runs
    from reconcile.engine import reconcile_snapshot, resolve_snapshot

    settings = _settings(args)
    ref = runs.resolve_run(settings.data_dir, args.run) if args.run else None
    snap = resolve_snapshot(settings.data_dir, ref.target if ref else None)
    grace = args.grace_hours if args.grace_hours is not None else settings.reconcile_grace_hours
    started = runs.now_utc()
    t0 = time.monotonic()
    # the event path's per-key activity: what a sync wrote after this snapshot, or a callout
    # in flight, is pending rather than drift (None, and nothing held, without an inbox)
    result = reconcile_snapshot(snap, settings.data_dir, grace_hours=grace,
                                progress=_progress(args), activity=read_activity(settings))
    s = result.summary
    counts = {**s["by_status"], "auto": s["by_action"].get("auto", 0),
              "human": s["by_action"].get("human", 0),
              "seconds": round(time.monotonic() - t0, 3)}
    with StateDB(settings.data_dir) as st:  # every run that reconciles is in the history
        runs.record_manual(st, result.run_id, "drift" if result.open.height else "clean",
                           started, counts)
        ref = ledger_ref(st, result.run_id)
    if args.json:
        from jobs.cli.jsonout import emit

        emit("reconcile", reconcile_document(result, ref))
    elif not args.quiet:
        print_reconcile(result)
    if args.fail_on_drift and result.open.height:
        return EXIT_DRIFT
    return EXIT_OK


def ledger_ref(st, snapshot_run: str) -> str | None:  # noqa: ANN001 (core.state.StateDB)
    """The run id the history knows this snapshot by (the job run whose attempt made it)."""
    from core import ledger

    ref = ledger.resolve_run(st.con, snapshot_run)
    return ref.run if ref is not None else None


def add_parser(sub: Any) -> None:
    rec = sub.add_parser("reconcile", help="diff a complete snapshot and apply the rules")
    add_run(rec, "run id or snapshot id (default: the latest complete snapshot)")
    rec.add_argument("--grace-hours", type=HOURS,
                     help="Zuora changes this recent are pending, not drift (default: config "
                     "reconcile.grace_hours, 2)")
    add_fail_on_drift(rec, "exit 1 when drift (auto or human findings) exists")
    add_json(rec, "print the run's totals and per-object figures as JSON "
             "(docs/json/reconcile.schema.json)")
    rec.set_defaults(func=cmd_reconcile)
