"""``recon repair plan | apply | revert | history``.

Exit codes (``jobs.cli.exit_codes``): 0 when the apply/revert ran to the end with nothing skipped,
and for every dry run (a preview: the guards ``--yes`` would trip are listed, not refused; the
target's identity is still checked first); 1 when it ran to the end but skipped operations as conflicts or missing
references (each one is listed: they need a person); 2 on a refusal (a guard, the lock) or an
error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from core.commands import CommandContext
from core.config import Settings, redact_url
from core.errors import ReconError
from jobs.cli.argtypes import COUNT, IN_FILE, LIMIT_OR_ALL, OUT_FILE, PathArg
from jobs.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    add_db,
    add_json,
    add_run,
    add_yes,
    context_of,
    write_text,
)
from jobs.cli.common import progress_of as _progress
from jobs.cli.common import settings_of as _settings
from jobs.cli.exit_codes import NEEDS_A_PERSON
from jobs.cli.jsonout import emit
from repair.executor import ALREADY, APPLIED, CONFLICT, REF_MISSING, SUPERSEDED

EXIT_PARTIAL = NEEDS_A_PERSON


def _v(value: Any) -> str:
    return "∅" if value is None else json.dumps(value, ensure_ascii=False)


def _key(key: dict[str, Any]) -> str:
    return json.dumps(key, ensure_ascii=False, sort_keys=True)


SAMPLES = 5  # operations shown per (table, op) in a dry run without --all


def format_counts(result: Any) -> list[str]:
    c = result.counts
    if c.height == 0:
        return ["  (no operations)"]
    width = max(len("table"), *(len(t) for t in c["table"]))
    applied = "would" if result.dry_run else "applied"
    lines = [f"  {'table':<{width}}  {'op':<6} {'planned':>8} {applied:>8} {'already':>8} "
             f"{'supersed':>8} {'conflict':>8} {'no-ref':>7}"]
    for r in c.iter_rows(named=True):
        lines.append(f"  {r['table']:<{width}}  {r['op']:<6} {r['planned']:>8,} "
                     f"{r['applied']:>8,} {r['already_applied']:>8,} {r['superseded']:>8,} "
                     f"{r['conflict']:>8,} {r['referenced_row_missing']:>7,}")
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


_LABELS = {CONFLICT: "conflict", REF_MISSING: "referenced row missing",
           ALREADY: "already applied", SUPERSEDED: "superseded"}


def format_skip(o: Any) -> str:
    return f"  [{o.seq}] {o.op} {o.table} {_key(o.key)}: {_LABELS[o.status]} — {o.detail}"


def samples(outcomes: list[Any], n: int | None = SAMPLES) -> tuple[list[Any], int]:
    """The applied (dry run: would-apply) outcomes, up to ``n`` per (table, op) (None: all),
    and how many were left out."""
    shown: list[Any] = []
    per: dict[tuple[str, str], int] = {}
    left = 0
    for o in outcomes:
        if o.status != APPLIED:
            continue
        k = (o.table, o.op)
        per[k] = per.get(k, 0) + 1
        if n is None or per[k] <= n:
            shown.append(o)
        else:
            left += 1
    return shown, left


def _db_flag(result: Any) -> list[str]:
    """``--db URL`` for a follow-up command when this one ran on a database other than
    ``local.database_url`` and its URL carries no password (else nothing: the reader passes
    the same --db; a password is never printed)."""
    from core.commands import duckdb_absolute
    from repair.target import FROM_SETTINGS

    t = result.target
    if t is None or t.source == FROM_SETTINGS:
        return []
    duck = duckdb_absolute(t.url)  # only a DuckDB file's URL is printed: no secret in it
    return ["--db", duck] if duck else []


def next_commands(result: Any, ctx: CommandContext, plan: str | Path | None = None
                  ) -> list[str]:
    """What to run next, complete for this run (paths absolute, its config, its database)."""
    out: list[str] = []
    if result.kind == "apply" and result.dry_run and plan is not None:
        blocked = [t for t in result.guards if t.override is None]
        force = ["--force"] if any(t.override == "--force" for t in result.guards) else []
        if not blocked and result.ops_applied:
            # the plan names its own DuckDB file; a --db given to this run is passed on
            from repair.target import FROM_PLAN

            db = [] if result.target and result.target.source == FROM_PLAN else _db_flag(result)
            out.append(ctx.command("repair", "apply", Path(plan), *db, "--yes", *force))
    if not result.dry_run and result.apply_id and result.ops_applied:
        out.append(ctx.command("repair", "revert", result.apply_id, *_db_flag(result),
                               "--yes"))
    if not result.dry_run:
        out.append(ctx.command("repair", "history", *_db_flag(result)))
    return out


def format_result(result: Any, settings: Settings | None = None, *,
                  ctx: CommandContext | None = None, plan: str | Path | None = None,
                  all_ops: bool = False) -> list[str]:
    """The terminal report of an apply, revert or dry run. A dry run is a preview: per
    table what would change, samples (every operation with ``all_ops``), what would be
    skipped and why, each guard ``--yes`` would trip with what to do, and the command that
    applies it."""
    what = (f"revert of {result.reverts_apply_id}" if result.kind == "revert"
            else f"plan {result.plan_id} (snapshot {result.run_id})")
    if result.target is not None:
        where = f" on {result.target.describe()}"
    else:
        where = f" on {redact_url(settings.local_database_url)}" if settings else ""
    n, k = result.ops_planned, result.batches
    conflicts, missing = result.count(CONFLICT), result.count(REF_MISSING)
    already, superseded = result.count(ALREADY), result.count(SUPERSEDED)
    lines: list[str] = []
    if result.dry_run:
        lines.append(f"DRY RUN, nothing was written: {what}{where}: {n:,} operations in "
                     f"{k:,} batches; {result.ops_applied:,} would change a row, "
                     f"{already:,} already applied, {superseded:,} superseded, "
                     f"{conflicts:,} conflicts, {missing:,} referenced rows missing")
    else:
        lines.append(f"{result.kind} {result.apply_id} {result.status}: {what}{where}: "
                     f"{result.ops_applied:,} of {n:,} operations applied in {k:,} batches, "
                     f"{already:,} already applied, {superseded:,} superseded, {conflicts:,} "
                     f"skipped as conflicts, {missing:,} skipped: referenced row missing; "
                     f"{result.seconds:.1f}s")
    lines += format_counts(result)
    for note in result.notes:
        lines.append(f"  {note}")
    if result.dry_run:
        shown, left = samples(result.outcomes, None if all_ops else SAMPLES)
        if shown:
            lines.append("would change:" if all_ops or not left else
                         f"would change (up to {SAMPLES} per table and operation; --all lists "
                         "every one):")
            for o in shown:
                lines += format_change(o)
            if left:
                lines.append(f"  … and {left:,} more")
    skipped = [o for o in result.outcomes if o.status in (CONFLICT, REF_MISSING)]
    if skipped:
        lines.append("would skip (conflicts and missing references):" if result.dry_run
                     else "skipped, not written (conflicts and missing references):")
        lines += [format_skip(o) for o in skipped]
    synced = [o for o in result.outcomes if o.status == SUPERSEDED]
    if synced:  # not conflicts: a newer apply or a sync wrote the row after this plan's data
        lines.append("not written, superseded by later applies or syncs (newer than this "
                     "plan):")
        lines += [format_skip(o) for o in synced]
    mine = [o for o in result.outcomes if o.status == ALREADY and "of this plan" in o.detail]
    if mine:  # written by an earlier apply of this plan, changed since: not a conflict
        lines.append("already applied by an earlier apply of this plan (changed since):")
        lines += [format_skip(o) for o in mine]
    for t in result.guards:
        todo = (f"if the plan is right, add {t.override}" if t.override
                else "fix this first: no flag overrides it")
        lines.append(f"--yes would refuse: guard {t.guard}: {t.message} [{todo}]")
    follow = next_commands(result, ctx or CommandContext(), plan)
    if result.dry_run:
        lines.append("nothing was written" + ("; to apply it: " + follow[0] if follow else ""))
    else:
        if result.kind == "apply" and result.ops_applied and follow:
            lines.append(f"undo with: {follow[0]}")
        lines.append(f"history: {follow[-1]}")
    return lines


def result_doc(result: Any, ctx: CommandContext, plan: str | Path | None = None,
               all_ops: bool = False) -> dict[str, Any]:
    """``repair apply|revert --json``: the result as a document (docs/json)."""
    def op(o: Any) -> dict[str, Any]:
        return {"seq": o.seq, "batch": o.batch, "table": o.table, "op": o.op,
                "group": o.group, "key": o.key, "status": o.status, "detail": o.detail,
                "changes": [{"column": c, "before": b, "after": a} for c, b, a in o.changes]}

    shown, left = samples(result.outcomes, None if all_ops else SAMPLES)
    t = result.target
    return {
        "kind": result.kind, "dry_run": result.dry_run, "apply_id": result.apply_id,
        "status": result.status, "plan_id": result.plan_id, "run_id": result.run_id,
        "reverts_apply_id": result.reverts_apply_id,
        "database": {"url": t.shown, "source": t.source} if t else None,
        "operations": result.ops_planned, "applied": result.ops_applied,
        "already_applied": result.count(ALREADY), "superseded": result.count(SUPERSEDED),
        "conflicts": result.count(CONFLICT), "referenced_row_missing": result.count(REF_MISSING),
        "batches": result.batches, "seconds": round(result.seconds, 3),
        "counts": result.counts.to_dicts(),
        "guards": [{"guard": g.guard, "message": g.message, "override": g.override}
                   for g in result.guards],
        "notes": list(result.notes),
        "changes": [op(o) for o in shown], "changes_left_out": left,
        "skipped": [op(o) for o in result.outcomes if o.status != APPLIED],
        "next": next_commands(result, ctx, plan),
    }


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
    ctx = context_of(args)
    preview = ctx.command("repair", "apply", out.resolve())
    if args.json:
        s = plan.summary
        emit("repair plan", {
            "plan_id": plan.plan_id, "run_id": plan.run_id,
            "created_at": plan.created_at.isoformat().replace("+00:00", "Z"),
            "plan": str(out.resolve()), "summary_file": str(out.with_suffix(".txt").resolve()),
            "only": plan.only, "validation": plan.validation,
            "snapshot_complete": plan.snapshot_complete,
            "local_identity": plan.local_identity.as_dict() if plan.local_identity else None,
            "operations": s.operations, "groups": s.groups,
            "by_step_table": s.by_step_table, "needs_a_person": s.needs_a_person,
            "not_planned": s.not_planned, "next": [preview]})
        return EXIT_OK
    if not args.quiet:
        print(text)
        print(f"plan: {out.resolve()}")
        print(f"review it, then preview it (a dry run): {preview}")
    return EXIT_OK


def run_apply(args: argparse.Namespace) -> int:
    from repair.apply import apply_plan

    try:
        settings = _settings(args)
        result = apply_plan(args.plan, settings, yes=args.yes, batch_size=args.batch_size,
                            force=args.force, progress=_progress(args), db=args.db)
    except ReconError as e:
        return _fail(e)
    return _report(args, result, settings, plan=args.plan)


def run_revert(args: argparse.Namespace) -> int:
    from repair.apply import revert_apply

    try:
        settings = _settings(args)
        result = revert_apply(args.apply_id, settings, yes=args.yes, force=args.force,
                              progress=_progress(args), db=args.db)
    except ReconError as e:
        return _fail(e)
    return _report(args, result, settings)


def _report(args: argparse.Namespace, result: Any, settings: Settings,
            plan: str | None = None) -> int:
    """Print the result; the exit code: 1 when a real apply skipped operations."""
    ctx = context_of(args)
    all_ops = getattr(args, "all", False)
    if getattr(args, "json", False):
        emit(f"repair {result.kind}", result_doc(result, ctx, plan, all_ops))
    elif not getattr(args, "quiet", False):
        print("\n".join(format_result(result, settings, ctx=ctx, plan=plan, all_ops=all_ops)))
    elif not result.dry_run:  # quiet: still say what was skipped, on stderr
        skipped = [o for o in result.outcomes if o.status in (CONFLICT, REF_MISSING)]
        if skipped:
            print(f"recon: {result.kind} {result.apply_id}: {len(skipped)} operations skipped",
                  file=sys.stderr)
            for o in skipped:
                print(format_skip(o), file=sys.stderr)
    return EXIT_PARTIAL if result.needs_a_person else EXIT_OK


def _iso(v: Any) -> str | None:
    return None if v is None else v.isoformat()


def run_history(args: argparse.Namespace) -> int:
    from repair.apply import list_applies
    from repair.target import resolve

    try:
        settings = _settings(args)
        df = list_applies(settings, args.db)
        if args.run:  # the applies of plans made from that run (its run id or an attempt's)
            from jobs.runs import target_of

            df = df.filter(df["run_id"] == target_of(settings.data_dir, args.run))
    except ReconError as e:
        return _fail(e)
    where = resolve(settings, args.db)
    if args.limit:
        df = df.tail(args.limit)
    if args.json:
        emit("repair history", {
            "database": {"url": where.shown, "source": where.source},
            "applies": [{**r, "started_at": _iso(r["started_at"]),
                         "finished_at": _iso(r["finished_at"])}
                        for r in df.to_dicts()]})
        return EXIT_OK
    if getattr(args, "quiet", False):
        return EXIT_OK
    if df.height == 0:
        print(f"no repairs recorded on {where.describe()}")
        return EXIT_OK
    print(f"repairs recorded on {where.describe()}:")
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


TARGET_HELP = ("the local database to apply to (default: the plan's own DuckDB file, else "
               "config local.database_url); it must be the database the plan was made from")


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
    add_db(ap, TARGET_HELP)
    ap.add_argument("--all", action="store_true",
                    help=f"a dry run lists every operation (default: up to {SAMPLES} per "
                    "table and operation)")
    add_json(ap, "print the result as JSON (docs/json/repair-apply.schema.json)")
    ap.set_defaults(func=run_apply)

    rv = sub.add_parser("revert", help="undo an apply from its audit (dry run unless --yes)",
                        description="Restore the before images of an apply's changes. Rows "
                        "changed since the apply are skipped and reported.")
    rv.add_argument("apply_id", metavar="APPLY_ID", help="from `recon repair history`")
    add_yes(rv)
    rv.add_argument("--force", action="store_true",
                    help="revert even when more than repair.max_change_fraction of a table "
                    "would change")
    add_db(rv, "the local database holding the apply (default: config local.database_url)")
    add_json(rv, "print the result as JSON (docs/json/repair-revert.schema.json)")
    rv.set_defaults(func=run_revert)

    hist = sub.add_parser("history", help="list applies and reverts")
    hist.add_argument("--limit", type=LIMIT_OR_ALL, default=0, help="only the last N (0: all)")
    add_run(hist, "only the applies of plans made from this run (run id, or an attempt's or "
            "snapshot's id)")
    add_db(hist, "the local database whose audit to list (default: config "
           "local.database_url)")
    add_json(hist, "print the applies as JSON (docs/json/repair-history.schema.json)")
    hist.set_defaults(func=run_history)

    rplan = sub.add_parser("plan", help="plan repairs of a reconciled run (writes only "
                           "the plan file)")
    add_run(rplan, "run id, or an attempt's or snapshot's id (default: the latest complete "
            "snapshot)")
    rplan.add_argument("--only", metavar="OBJECT|RULE",
                       help="only findings of this object, local table or rule (e.g. D11)")
    rplan.add_argument("--out", metavar="PLAN", type=PathArg(OUT_FILE),
                       help="plan file (default: DATA/runs/<run>/repair-plan.json)")
    add_json(rplan, "print the plan's summary as JSON (docs/json/repair-plan.schema.json)")
    rplan.set_defaults(func=cmd_repair_plan)
