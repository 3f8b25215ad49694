"""``recon reconcile``: diff a complete snapshot and apply the rules."""

from __future__ import annotations

import argparse
from typing import Any

from jobs.cli.argtypes import HOURS
from jobs.cli.common import EXIT_DRIFT, EXIT_OK, add_fail_on_drift, add_run
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


def cmd_reconcile(args: argparse.Namespace) -> int:
    from core.inbox import read_activity
    from reconcile.engine import reconcile_snapshot, resolve_snapshot

    settings = _settings(args)
    snap = resolve_snapshot(settings.data_dir, args.run)
    grace = args.grace_hours if args.grace_hours is not None else settings.reconcile_grace_hours
    # the event path's per-key activity: what a sync wrote after this snapshot, or a callout
    # in flight, is pending rather than drift (None, and nothing held, without an inbox)
    result = reconcile_snapshot(snap, settings.data_dir, grace_hours=grace,
                                progress=_progress(args), activity=read_activity(settings))
    if not args.quiet:
        print_reconcile(result)
    if args.fail_on_drift and result.open.height:
        return EXIT_DRIFT
    return EXIT_OK


def add_parser(sub: Any) -> None:
    rec = sub.add_parser("reconcile", help="diff a complete snapshot and apply the rules")
    add_run(rec, "snapshot run id (default: the latest complete snapshot)")
    rec.add_argument("--grace-hours", type=HOURS,
                     help="Zuora changes this recent are pending, not drift (default: config "
                     "reconcile.grace_hours, 2)")
    add_fail_on_drift(rec, "exit 1 when drift (auto or human findings) exists")
    rec.set_defaults(func=cmd_reconcile)
