"""``recon``: the command line. Exit codes: 0 clean, 1 drift found (when asked to fail on
drift), 2 error. Quiet by default (cron-friendly); progress goes to stderr only on a terminal
or with ``--progress``."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from extract.config import Settings, load_settings, redact_url
from extract.errors import ReconError

EXIT_OK, EXIT_DRIFT, EXIT_ERROR = 0, 1, 2


def _progress(args: argparse.Namespace) -> Callable[[str], None] | None:
    if getattr(args, "progress", False) or (sys.stderr.isatty() and not args.quiet):
        return lambda msg: print(f"  {msg}", file=sys.stderr, flush=True)
    return None


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


# -- recon config ---------------------------------------------------------------------------
def cmd_config_show(args: argparse.Namespace) -> int:
    print(json.dumps(_settings(args).describe(), indent=2))
    return EXIT_OK


# -- recon db init --------------------------------------------------------------------------
def cmd_db_init(args: argparse.Namespace) -> int:
    from extract.localdb import schema
    from extract.localdb.connect import connect

    if args.print:
        print(schema.render(args.dialect))
        return EXIT_OK
    url = args.db or _settings(args).local_database_url
    with connect(url) as db:
        tables = db.init_schema()
    if not args.quiet:
        print(f"local schema ready on {redact_url(url)}: {len(tables)} tables")
    return EXIT_OK


# -- recon sandbox generate -----------------------------------------------------------------
def _print_summary(summary, out: Path, db_url: str | None) -> None:
    from extract.catalog import OBJECTS

    width = max(len(o.name) for o in OBJECTS)
    print(f"tenant written to {out} in {summary.seconds:.1f}s")
    print(f"local side: {redact_url(db_url) if db_url else out / 'local.duckdb'}")
    print(f"  {'Zuora object':<{width}}  {'rows':>10}   local table")
    for spec in OBJECTS:
        local = summary.local_counts.get(spec.table, 0)
        print(f"  {spec.name:<{width}}  {summary.counts.get(spec.name, 0):>10,}   "
              f"{spec.table} ({local:,})")
    for table in ("customers", "billing_account_memberships", "orders"):
        print(f"  {'':<{width}}  {'':>10}   {table} ({summary.local_counts.get(table, 0):,})")
    total = sum(v for k, v in summary.labels.items() if k != "D26")
    print(f"labelled drift: {total:,} expected findings "
          f"({', '.join(f'{k}:{v}' for k, v in summary.labels.items())})")
    print(f"labels: {out / 'labels.parquet'}")


def cmd_sandbox_generate(args: argparse.Namespace) -> int:
    from extract.sandbox.generate.run import Options, generate

    settings = _settings(args)
    opts = Options(
        accounts=args.accounts, seed=args.seed, drift=args.drift, d26=args.d26,
        as_of=args.as_of, tz=args.tenant_tz or settings.tenant_tz, chunk=args.chunk,
        scenarios=tuple(args.scenario) if args.scenario else None, fmt=args.format,
    )
    if opts.accounts <= 0:
        raise ReconError("--accounts must be a positive number of accounts")
    if not 0 <= opts.drift <= 0.5:
        raise ReconError("--drift is a fraction of subscriptions between 0 and 0.5")
    summary = generate(opts, Path(args.out), args.db, progress=_progress(args))
    if not args.quiet:
        _print_summary(summary, Path(args.out), args.db)
    return EXIT_OK


def cmd_sandbox_serve(args: argparse.Namespace) -> int:
    from extract.sandbox.server import serve

    settings = _settings(args)
    serve(args.data, port=args.port, tenant_tz=args.tenant_tz, faults=args.faults,
          client_id=settings.zuora_client_id,
          client_secret=settings.zuora_client_secret.get() or "sandbox-secret")
    return EXIT_OK


# -- recon extract --------------------------------------------------------------------------
def cmd_extract(args: argparse.Namespace) -> int:
    from jobs.lineage import extract_step

    settings = _settings(args)
    lag = args.lag_hours if args.lag_hours is not None else settings.extract_lag_hours
    from extract.catalog import get

    # --allow-empty A --allow-empty B or --allow-empty A,B (what the suspect-export error says)
    allow = tuple(o.strip() for v in args.allow_empty or () for o in v.split(",") if o.strip())
    for name in allow:
        get(name)  # a typo must fail loudly, not silently allow nothing
    manifest = extract_step(settings, args.mode, progress=_progress(args), allow_empty=allow,
                            lag=dt.timedelta(hours=lag))
    if manifest.volume.get("outcome") == "failed":
        print(f"recon: snapshot {manifest.run_id} is complete but failed its volume check "
              f"against {manifest.volume.get('baseline_run_id')}: "
              f"{'; '.join(manifest.volume.get('failures', []))}. It is never a base; if the "
              f"drop is real: recon snapshots accept {manifest.run_id} --reason TEXT",
              file=sys.stderr)
        return 1
    if not args.quiet:
        total = sum(int(v.get("rows", 0)) for v in manifest.zuora.values())
        local = sum(int(v.get("rows", 0)) for v in manifest.local.values())
        print(f"snapshot {manifest.run_id} complete ({manifest.mode}): {total:,} Zuora rows in "
              f"{len(manifest.zuora)} objects, {local:,} local rows in {len(manifest.local)} "
              f"tables, {manifest.duration_s or 0:.1f}s")
    return EXIT_OK


# -- recon reconcile ------------------------------------------------------------------------
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
    from reconcile.engine import reconcile_snapshot, resolve_snapshot

    settings = _settings(args)
    snap = resolve_snapshot(settings.data_dir, args.run)
    grace = args.grace_hours if args.grace_hours is not None else settings.reconcile_grace_hours
    result = reconcile_snapshot(snap, settings.data_dir, grace_hours=grace,
                                progress=_progress(args))
    if not args.quiet:
        print_reconcile(result)
    if args.fail_on_drift and result.open.height:
        return EXIT_DRIFT
    return EXIT_OK


# -- recon repair plan ----------------------------------------------------------------------
def cmd_repair_plan(args: argparse.Namespace) -> int:
    from reconcile.engine import resolve_snapshot, run_dir
    from reconcile.repair.plan import build_plan, summary_text, write_plan

    settings = _settings(args)
    run = args.run or resolve_snapshot(settings.data_dir, None).run_id
    plan = build_plan(settings.data_dir, run, only=args.only,
                      local_database_url=settings.local_database_url)
    out = Path(args.out) if args.out else run_dir(settings.data_dir, plan["run_id"]) / (
        f"repair-plan{'-' + args.only if args.only else ''}.json")
    write_plan(plan, out)
    text = summary_text(plan)
    out.with_suffix(".txt").write_text(text + "\n")
    if not args.quiet:
        print(text)
        print(f"plan: {out}")
        print(f"review it, then: recon repair apply {out} (dry run) and --yes to write")
    return EXIT_OK


# -- recon demo -----------------------------------------------------------------------------
def _demo_tenant_matches(tenant: Path, opts) -> bool:  # noqa: ANN001 (generate.run.Options)
    """True when ``tenant`` is a finished demo tenant generated with ``opts`` (tenant.json is
    written last, so its presence means the generator finished)."""
    meta_file, db_file = tenant / "tenant.json", tenant / "local.duckdb"
    if not (meta_file.is_file() and db_file.is_file() and (tenant / "labels.parquet").is_file()):
        return False
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, ValueError):
        return False
    want = {"accounts": opts.accounts, "seed": opts.seed, "drift": opts.drift, "d26": opts.d26,
            "as_of": opts.as_of.isoformat(), "tenant_tz": opts.tz, "format": opts.fmt}
    return all(meta.get(k) == v for k, v in want.items())


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job on the embedded defaults, end to end: generate a drifted tenant (or reuse
    the one a previous demo made with the same options), serve it from the Zuora sandbox
    (in-process, real HTTP on loopback), extract a complete snapshot from it and from the
    local DuckDB, validate, reconcile, plan repairs and dry-run them against the demo's local
    copy, write the drift report and print a summary with its path.

    Reusing the tenant keeps history meaningful: a second demo shows the same findings as
    persisting, and after ``--apply`` (the plan applied to the demo's own local DuckDB, never
    anything else) the next demo shows the repaired ones as resolved."""
    import time
    from dataclasses import replace

    from extract.config import Secret
    from extract.localdb.connect import duckdb_url
    from extract.sandbox.generate.run import Options, generate
    from extract.sandbox.server import SandboxServer
    from jobs.lineage import extract_step, validate_recorded

    t_start = time.perf_counter()
    settings = _settings(args)
    data = Path(args.data_dir or settings.data_dir)
    tenant = data / "demo"
    progress = _progress(args)
    opts = Options(accounts=args.accounts, seed=args.seed, drift=args.drift, d26=args.d26,
                   as_of=args.as_of, tz=settings.tenant_tz)
    if not args.fresh and _demo_tenant_matches(tenant, opts):
        if not args.quiet:
            print(f"reusing the demo tenant in {tenant} (same options; --fresh regenerates it)")
    else:
        if progress:
            progress(f"generate {opts.accounts:,} accounts")
        summary = generate(opts, tenant, progress=progress)
        if not args.quiet:
            _print_summary(summary, tenant, None)
    secret = "demo-sandbox-secret"
    local_url = duckdb_url((tenant / "local.duckdb").resolve())
    run_settings = replace(settings, zuora_client_secret=Secret(secret),
                           local_database_url=local_url, data_dir=data)
    with SandboxServer(tenant, client_id=settings.zuora_client_id, client_secret=secret) as srv:
        srv.store.preload()
        run_settings = replace(run_settings, zuora_base_url=srv.url)
        if progress:
            progress("extract over HTTP")
        manifest = extract_step(run_settings, "full", progress=progress)
    if not args.quiet:
        zrows = sum(int(v.get("rows", 0)) for v in manifest.zuora.values())
        lrows = sum(int(v.get("rows", 0)) for v in manifest.local.values())
        print(f"\nZuora sandbox served {tenant} at {srv.url}; extracted {zrows:,} Zuora rows "
              f"and {lrows:,} local rows in {manifest.duration_s or 0:.1f}s")
        print(f"snapshot: {data / 'snapshots' / manifest.run_id}")
    from reconcile.engine import reconcile_snapshot, resolve_snapshot, run_dir
    from reports import build_report

    snap = resolve_snapshot(data, manifest.run_id)
    try:
        if progress:
            progress("validate")
        checks = validate_recorded(snap, data, settings=run_settings)
        if not args.quiet:
            res = checks.results
            bad = res.filter(res["outcome"] != "passed")
            print(f"validated: {res.height} checks, {bad.height} not passed, "
                  f"{checks.quarantined} rows quarantined")
        if progress:
            progress("reconcile")
        result = reconcile_snapshot(snap, data, grace_hours=settings.reconcile_grace_hours,
                                    progress=progress)
    except ReconError:
        # the run stops, but its report still says why (PARTIAL — NOT RECONCILED)
        try:
            paths = build_report(data, manifest.run_id, settings=run_settings)
            print(f"{paths.label}: {paths.html}", file=sys.stderr)
        except ReconError as report_error:
            print(f"recon: no report either: {report_error}", file=sys.stderr)
        raise
    if not args.quiet:
        print()
        print_reconcile(result)
    _demo_repair(args, data, result.run_id, run_settings, progress, run_dir)
    if progress:
        progress("report")
    paths = build_report(data, result.run_id, settings=run_settings, read_applies=True)
    if not args.quiet:
        s = result.summary["by_status"]
        print(f"\n{paths.label} — {s.get('new', 0):,} new, {s.get('persisting', 0):,} "
              f"persisting, {s.get('resolved', 0):,} resolved since "
              f"{result.previous_run or 'no previous run'}, {s.get('pending', 0):,} pending")
        print(f"report: {paths.html}  ({paths.html_bytes / 1e6:.1f} MB, {paths.seconds:.1f}s)")
        print(f"json:   {paths.json}")
        print(f"demo finished in {time.perf_counter() - t_start:.1f}s")
    return EXIT_OK


def _demo_repair(args: argparse.Namespace, data: Path, run_id: str, settings: Settings,
                 progress: Callable[[str], None] | None, run_dir: Callable[..., Path]) -> None:
    """Plan repairs, dry-run them against the demo's local copy, and with ``--apply`` apply
    them there (the demo's own DuckDB file; the small tenant trips the change-fraction guard
    on its tiny catalog tables, so the demo passes --force and prints what the guard said)."""
    from jobs.repair.apply import apply_plan
    from reconcile.repair.plan import build_plan, summary_text, write_plan

    if progress:
        progress("plan repairs")
    plan = build_plan(data, run_id, local_database_url=settings.local_database_url)
    path = write_plan(plan, run_dir(data, run_id) / "repair-plan.json")
    path.with_suffix(".txt").write_text(summary_text(plan) + "\n")
    if progress:
        progress("dry run of the repair plan")
    dry = apply_plan(path, settings, force=True, progress=progress)
    if not args.quiet:
        print(f"\nrepair plan: {len(plan['operations']):,} operations, "
              f"{len(plan['needs_a_person']):,} findings need a person; dry run against the "
              f"demo's local copy: {dry.ops_applied:,} would apply, {dry.ops_skipped:,} "
              f"would be skipped ({dry.seconds:.1f}s)")
        for note in dry.notes:
            print(f"  guard: {note}")
        print(f"plan: {path}")
    if args.apply:
        if progress:
            progress("apply the plan to the demo's local copy")
        done = apply_plan(path, settings, yes=True, force=True, progress=progress)
        if not args.quiet:
            print(f"applied to the demo's local copy: {done.ops_applied:,} operations "
                  f"({done.status}, apply {done.apply_id}); run `recon demo` again to see "
                  "the repaired findings resolved")


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from e


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="recon",
        description="Reconcile a local copy of Zuora Billing data against Zuora (the source "
        "of truth): extract, validate, diff, report and repair.",
        epilog="Configuration: recon.toml (or --config / RECON_CONFIG) and RECON_* "
        "environment variables; see README. Exit codes: 0 ok, 1 drift found (with "
        "--fail-on-drift), 2 error.",
    )
    p.add_argument("--config", help="TOML config file (default: $RECON_CONFIG or ./recon.toml)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    p.add_argument("--progress", action="store_true", help="progress on stderr even in cron")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    cfg = sub.add_parser("config", help="show the effective configuration (secrets masked)")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True)
    cfg_sub.add_parser("show", help="print settings as JSON").set_defaults(func=cmd_config_show)

    db = sub.add_parser("db", help="local database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    init = db_sub.add_parser("init", help="create the local schema (idempotent)")
    init.add_argument("--db", help="local database URL (default: config local.database_url)")
    init.add_argument("--print", action="store_true", help="print the DDL instead")
    init.add_argument("--dialect", choices=("postgres", "duckdb"), default="postgres",
                      help="dialect for --print")
    init.set_defaults(func=cmd_db_init)

    sb = sub.add_parser("sandbox", help="the Zuora sandbox: tenant generator")
    sb_sub = sb.add_subparsers(dest="sandbox_command", required=True)
    gen = sb_sub.add_parser("generate", help="generate a Zuora tenant and its local copy with "
                            "labelled drift")
    _generate_args(gen)
    gen.add_argument("--out", required=True, help="dataset directory to write")
    gen.add_argument("--db", help="local database URL (default: DuckDB file in --out)")
    gen.add_argument("--tenant-tz", help="tenant time zone (default: config tenant_tz)")
    gen.add_argument("--chunk", type=int, default=20_000,
                     help="accounts generated per chunk (memory bound)")
    gen.add_argument("--format", choices=("jsonl", "parquet"), default="jsonl",
                     help="Zuora-side file format (Parquet is smaller for large tenants)")
    gen.add_argument("--scenario", action="append",
                     help="only this drift scenario (repeatable), e.g. --scenario D11")
    gen.set_defaults(func=cmd_sandbox_generate)

    srv = sb_sub.add_parser("serve", help="serve a dataset over Zuora's API shapes (loopback)")
    srv.add_argument("--data", required=True, help="dataset directory (see README)")
    srv.add_argument("--port", type=int, default=8808)
    srv.add_argument("--tenant-tz", help="tenant time zone (default: the dataset's)")
    srv.add_argument("--faults", help="fault spec, e.g. aqua_file:truncate_csv:1,oauth:429:2")
    srv.set_defaults(func=cmd_sandbox_serve)

    ex = sub.add_parser("extract", help="export Zuora and the local tables into a snapshot")
    ex.add_argument("--mode", choices=("full", "incremental"),
                    help="default: config extract.mode (incremental), with a full export at "
                    "least every extract.full_every_days (7)")
    ex.add_argument("--allow-empty", action="append", metavar="OBJECT",
                    help="accept a zero-row export of OBJECT (repeatable or comma-separated)")
    ex.add_argument("--lag-hours", type=float,
                    help="incremental upper bound: now minus this many hours "
                    "(default: config extract.lag_hours, 2)")
    ex.set_defaults(func=cmd_extract)

    from jobs import validate_cmd

    validate_cmd.add_parser(sub)

    rec = sub.add_parser("reconcile", help="diff a complete snapshot and apply the rules")
    rec.add_argument("--run", help="snapshot run id (default: the latest complete snapshot)")
    rec.add_argument("--grace-hours", type=float,
                     help="Zuora changes this recent are pending, not drift (default: config "
                     "reconcile.grace_hours, 2)")
    rec.add_argument("--fail-on-drift", action="store_true",
                     help="exit 1 when drift (auto or human findings) exists")
    rec.set_defaults(func=cmd_reconcile)

    from jobs.repair.cli import add_parser as add_repair_parser
    from jobs.run_cmd import add_parsers as add_job_parsers

    add_job_parsers(sub)
    __import__("jobs.snapshots_cmd").snapshots_cmd.add_parser(sub)

    repair_sub = add_repair_parser(sub)
    rplan = repair_sub.add_parser("plan", help="plan repairs of a reconciled run (writes only "
                                  "the plan file)")
    rplan.add_argument("--run", help="run id (default: the latest complete snapshot)")
    rplan.add_argument("--only", metavar="OBJECT|RULE",
                       help="only findings of this object, local table or rule (e.g. D11)")
    rplan.add_argument("--out", metavar="PLAN",
                       help="plan file (default: DATA/runs/<run>/repair-plan.json)")
    rplan.set_defaults(func=cmd_repair_plan)

    from jobs import report_cmd

    report_cmd.add_parser(sub)

    demo = sub.add_parser("demo", help="run the main job on the embedded defaults")
    _generate_args(demo, accounts=2_000, drift=0.02)
    demo.add_argument("--data-dir", help="where to write (default: config data_dir)")
    demo.add_argument("--fresh", action="store_true",
                      help="regenerate the demo tenant even if one with these options exists")
    demo.add_argument("--apply", action="store_true",
                      help="apply the repair plan to the demo's own local DuckDB copy (never "
                      "anything else); the next demo then shows those findings resolved")
    demo.set_defaults(func=cmd_demo)
    return p


def _generate_args(p: argparse.ArgumentParser, accounts: int = 1_000, drift: float = 0.0) -> None:
    p.add_argument("--accounts", type=int, default=accounts, help="number of Zuora accounts")
    p.add_argument("--seed", type=int, default=1, help="random seed (same seed, same tenant)")
    p.add_argument("--drift", type=float, default=drift,
                   help="fraction of subscriptions that get drift, spread over D01–D25")
    p.add_argument("--d26", type=float, default=0.02,
                   help="rate of normalisation-only differences (must not be reported)")
    p.add_argument("--as-of", type=_date, default=dt.date(2026, 11, 1),
                   help="the tenant's 'today' (fixed by default, for reproducibility)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ReconError as e:
        print(f"recon: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("recon: interrupted", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # `recon … | head`
        sys.stderr.close()
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
