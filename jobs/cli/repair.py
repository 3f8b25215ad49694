"""``recon repair plan | apply | revert | history``.

Exit codes (``jobs.cli.exit_codes``): 0 when the apply/revert ran to the end with nothing skipped,
and for every dry run; 1 when it ran to the end but skipped operations as conflicts or missing
references (each one is listed: they need a person); 2 on a refusal (a guard, the lock) or an
error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from core.config import Settings, redact_url
from core.errors import ReconError
from jobs.cli.argtypes import COUNT, IN_FILE, LIMIT_OR_ALL, OUT_FILE, PathArg
from jobs.cli.common import EXIT_ERROR, EXIT_OK, add_run, add_yes, write_text
from jobs.cli.common import progress_of as _progress
from jobs.cli.common import settings_of as _settings
from jobs.cli.exit_codes import NEEDS_A_PERSON
from repair.executor import ALREADY, APPLIED, CONFLICT, REF_MISSING, SUPERSEDED

EXIT_PARTIAL = NEEDS_A_PERSON


def _v(value: Any) -> str:
    return "∅" if value is None else json.dumps(value, ensure_ascii=False)


def _key(key: dict[str, Any]) -> str:
    return json.dumps(key, ensure_ascii=False, sort_keys=True)


def format_counts(result: Any) -> list[str]:
    c = result.counts
    if c.height == 0:
        return ["  (no operations)"]
    width = max(len("table"), *(len(t) for t in c["table"]))
    applied = "would" if result.dry_run else "applied"
    lines = [f"  {'table':<{width}}  {'op':<6} {'planned':>8} {applied:>8} {'already':>8} "
             f"{'conflict':>8} {'no-ref':>7}"]
    for r in c.iter_rows(named=True):
        lines.append(f"  {r['table']:<{width}}  {r['op']:<6} {r['planned']:>8,} "
                     f"{r['applied']:>8,} {r['already_applied']:>8,} {r['conflict']:>8,} "
                     f"{r['referenced_row_missing']:>7,}")
    return lines


def format_change(o: Any) -> list[str]:
    """One operation: its header line and ``column: before → after`` lines."""
    lines = [f"  [{o.seq}] {o.op} {o.table} {_key(o.key)}"
             + (f"  ({o.detail})" if o.detail else "")]
    if o.op == "delete":
        row = {c: b for c, b, _ in o.changes}
        lines.append(f"      delete row: {json.dumps(row, ensure_ascii=False)}")
    elif o.op == "update":
        lines += [f"      {c}: {_v(b)} → {_v(a)}" for c, b, a in o.changes]
    else:
        lines += [f"      {c}: → {_v(a)}" for c, _, a in o.changes]
    return lines


def format_skip(o: Any) -> str:
    label = {CONFLICT: "conflict", REF_MISSING: "referenced row missing",
             ALREADY: "already applied", SUPERSEDED: "superseded"}[o.status]
    return f"  [{o.seq}] {o.op} {o.table} {_key(o.key)}: {label} — {o.detail}"


def format_result(result: Any, settings: Settings | None = None) -> list[str]:
    """The terminal report of an apply, revert or dry run."""
    what = (f"revert of {result.reverts_apply_id}" if result.kind == "revert"
            else f"plan {result.plan_id} (snapshot {result.run_id})")
    where = f" on {redact_url(settings.local_database_url)}" if settings else ""
    n, k = result.ops_planned, result.batches
    conflicts, missing = result.count(CONFLICT), result.count(REF_MISSING)
    lines: list[str] = []
    if result.dry_run:
        lines.append(f"DRY RUN, nothing was written: {what}{where}: {n:,} operations in "
                     f"{k:,} batches; {result.ops_applied:,} would change a row, "
                     f"{result.count(ALREADY):,} already applied, {conflicts:,} conflicts, "
                     f"{missing:,} referenced rows missing")
    else:
        lines.append(f"{result.kind} {result.apply_id} {result.status}: {what}{where}: "
                     f"{result.ops_applied:,} of {n:,} operations applied in {k:,} batches, "
                     f"{result.count(ALREADY):,} already applied, {conflicts:,} skipped as "
                     f"conflicts, {missing:,} skipped: referenced row missing; "
                     f"{result.seconds:.1f}s")
    lines += format_counts(result)
    for note in result.notes:
        lines.append(f"  {note}")
    if result.dry_run:
        changes = [o for o in result.outcomes if o.status == APPLIED]
        if changes:
            lines.append("would change:")
            for o in changes:
                lines += format_change(o)
    skipped = [o for o in result.outcomes if o.status in (CONFLICT, REF_MISSING)]
    if skipped:
        lines.append("would skip (conflicts and missing references):" if result.dry_run
                     else "skipped, not written (conflicts and missing references):")
        lines += [format_skip(o) for o in skipped]
    synced = [o for o in result.outcomes if o.status == SUPERSEDED]
    if synced:  # not conflicts: a targeted sync wrote newer values after the snapshot
        lines.append("not written, superseded by targeted syncs (newer than this plan):")
        lines += [format_skip(o) for o in synced]
    if result.dry_run:
        lines.append("nothing was written; run again with --yes to apply")
    elif result.kind == "apply" and result.ops_applied:
        lines.append(f"undo with: recon repair revert {result.apply_id} --yes")
    return lines


def _fail(e: ReconError) -> int:
    print(f"recon: error: {e}", file=sys.stderr)
    return EXIT_ERROR


def cmd_repair_plan(args: argparse.Namespace) -> int:
    from jobs.runs import target_of
    from reconcile.engine import resolve_snapshot, run_dir
    from repair.plan import write_plan
    from repair.planner import build_plan, summary_text

    settings = _settings(args)
    # the run id (or an attempt's, a snapshot's) → the attempt that reconciled
    run = target_of(settings.data_dir, args.run) or resolve_snapshot(settings.data_dir,
                                                                     None).run_id
    plan = build_plan(settings.data_dir, run, only=args.only,
                      local_database_url=settings.local_database_url)
    out = Path(args.out) if args.out else run_dir(settings.data_dir, plan.run_id) / (
        f"repair-plan{'-' + args.only if args.only else ''}.json")
    write_plan(plan, out)
    text = summary_text(plan)
    write_text(out.with_suffix(".txt"), text + "\n")
    if not args.quiet:
        print(text)
        print(f"plan: {out}")
        print(f"review it, then: recon repair apply {out} (dry run) and --yes to write")
    return EXIT_OK


def run_apply(args: argparse.Namespace) -> int:
    from repair.apply import apply_plan

    try:
        settings = _settings(args)
        result = apply_plan(args.plan, settings, yes=args.yes, batch_size=args.batch_size,
                            force=args.force, progress=_progress(args))
    except ReconError as e:
        return _fail(e)
    return _report(args, result, settings)


def run_revert(args: argparse.Namespace) -> int:
    from repair.apply import revert_apply

    try:
        settings = _settings(args)
        result = revert_apply(args.apply_id, settings, yes=args.yes, force=args.force,
                              progress=_progress(args))
    except ReconError as e:
        return _fail(e)
    return _report(args, result, settings)


def _report(args: argparse.Namespace, result: Any, settings: Settings) -> int:
    """Print the result; the exit code: 1 when a real apply skipped operations."""
    lines = format_result(result, settings)
    if not getattr(args, "quiet", False):
        print("\n".join(lines))
    elif not result.dry_run:  # quiet: still say what was skipped, on stderr
        skipped = [o for o in result.outcomes if o.status in (CONFLICT, REF_MISSING)]
        if skipped:
            print(f"recon: {result.kind} {result.apply_id}: {len(skipped)} operations skipped",
                  file=sys.stderr)
            for o in skipped:
                print(format_skip(o), file=sys.stderr)
    if not result.dry_run and (result.count(CONFLICT) or result.count(REF_MISSING)):
        return EXIT_PARTIAL
    return EXIT_OK


def run_history(args: argparse.Namespace) -> int:
    from repair.apply import list_applies

    try:
        settings = _settings(args)
        df = list_applies(settings)
        if args.run:  # the applies of plans made from that run (its run id or an attempt's)
            from jobs.runs import target_of

            df = df.filter(df["run_id"] == target_of(settings.data_dir, args.run))
    except ReconError as e:
        return _fail(e)
    if getattr(args, "quiet", False):
        return EXIT_OK
    if df.height == 0:
        print(f"no repairs recorded on {redact_url(settings.local_database_url)}")
        return EXIT_OK
    if args.limit:
        df = df.tail(args.limit)
    print(f"  {'apply id':<28} {'kind':<6} {'status':<9} {'started (UTC)':<19} "
          f"{'planned':>8} {'applied':>8} {'skipped':>8}  plan / reverts")
    for r in df.iter_rows(named=True):
        started = r["started_at"].strftime("%Y-%m-%d %H:%M:%S") if r["started_at"] else ""
        target = (f"reverts {r['reverts_apply_id']}" if r["kind"] == "revert"
                  else f"{r['plan_id']} ({r['run_id']})")
        print(f"  {r['apply_id']:<28} {r['kind']:<6} {r['status']:<9} {started:<19} "
              f"{r['ops_planned']:>8,} {r['ops_applied']:>8,} {r['ops_skipped']:>8,}  {target}")
        # a targeted sync's apply (run id = sync id): its message names the keys and trigger
        sync = str(r["run_id"] or "").startswith("sync-")
        if r["message"] and (sync or r["status"] in ("failed", "refused", "partial")):
            print(f"      {r['message'][:300]}")
    return EXIT_OK


def add_parser(subparsers: Any) -> None:
    """Add ``repair`` with ``apply``, ``revert``, ``history`` and ``plan`` to ``recon``'s
    sub-commands."""
    rp = subparsers.add_parser(
        "repair", help="repair the local database from a plan (dry run unless --yes)",
        description="Apply a repair plan to the LOCAL database (Zuora is never written), "
        "revert an apply from its audit, list applies. Without --yes nothing is written.")
    sub = rp.add_subparsers(dest="repair_command", metavar="SUBCOMMAND", required=True)

    ap = sub.add_parser("apply", help="apply a plan (dry run unless --yes)",
                        description="Apply a repair plan. Without --yes: a dry run that prints "
                        "every change it would make and writes nothing.")
    ap.add_argument("plan", type=PathArg(IN_FILE),
                    help="the plan file (JSON, from `recon repair plan`)")
    add_yes(ap)
    ap.add_argument("--batch-size", type=COUNT, metavar="N",
                    help="operations per transaction (default: config repair.batch_size, "
                    "1000); a group is never split")
    ap.add_argument("--force", action="store_true",
                    help="apply even when a table would have more than "
                    "repair.max_change_fraction of its rows updated or deleted")
    ap.set_defaults(func=run_apply)

    rv = sub.add_parser("revert", help="undo an apply from its audit (dry run unless --yes)",
                        description="Restore the before images of an apply's changes. Rows "
                        "changed since the apply are skipped and reported.")
    rv.add_argument("apply_id", metavar="APPLY_ID", help="from `recon repair history`")
    add_yes(rv)
    rv.add_argument("--force", action="store_true",
                    help="revert even when more than repair.max_change_fraction of a table "
                    "would change")
    rv.set_defaults(func=run_revert)

    hist = sub.add_parser("history", help="list applies and reverts")
    hist.add_argument("--limit", type=LIMIT_OR_ALL, default=0, help="only the last N (0: all)")
    add_run(hist, "only the applies of plans made from this run (run id, or an attempt's or "
            "snapshot's id)")
    hist.set_defaults(func=run_history)

    rplan = sub.add_parser("plan", help="plan repairs of a reconciled run (writes only "
                           "the plan file)")
    add_run(rplan, "run id, or an attempt's or snapshot's id (default: the latest complete "
            "snapshot)")
    rplan.add_argument("--only", metavar="OBJECT|RULE",
                       help="only findings of this object, local table or rule (e.g. D11)")
    rplan.add_argument("--out", metavar="PLAN", type=PathArg(OUT_FILE),
                       help="plan file (default: DATA/runs/<run>/repair-plan.json)")
    rplan.set_defaults(func=cmd_repair_plan)
