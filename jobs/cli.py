"""``recon``: the command line. Exit codes (one table for every command, ``jobs.exit_codes``):
0 done and nothing needs a person, 1 done and something needs a person (drift with
``--fail-on-drift``, validation errors, a partial apply, an overdue job), 2 could not do what
was asked. Quiet by default (cron-friendly); progress goes to stderr only on a terminal or with
``--progress``.

No traceback ever reaches the user: :func:`main` turns a :class:`ReconError` into its message,
and any other exception into a one-line message plus a crash log (the traceback) under
``DATA/crash/`` whose path the message gives."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
import tempfile
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from core.config import Settings, load_settings, redact_url
from core.errors import ReconError
from jobs.argtypes import (
    COUNT,
    DRIFT,
    HOURS,
    IN_DIR,
    IN_FILE,
    OUT_DIR,
    OUT_FILE,
    PORT,
    SEED,
    SHARE,
    PathArg,
    zone,
)

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
    from core.localdb import schema
    from core.localdb.connect import connect

    if args.print:
        print(schema.render(args.dialect))
        return EXIT_OK
    url = args.db or _settings(args).local_database_url
    with connect(url) as db:
        tables = db.init_schema(stamp=False)
        ident, versions = db.stamp()
    if not args.quiet:
        print(f"local schema ready on {redact_url(url)}: {len(tables)} tables")
        print(ident.stamp_summary(versions))
    return EXIT_OK


# -- recon db stamp -------------------------------------------------------------------------
def cmd_db_stamp(args: argparse.Namespace) -> int:
    """recon's own objects and the identity only: for a database whose schema the
    application owns (no application table is created or changed)."""
    from core.localdb.connect import connect, require_exists

    url = args.db or _settings(args).local_database_url
    require_exists(url, "`recon db stamp` marks an existing database; `recon db init` "
                   "creates one")
    with connect(url) as db:
        ident, versions = db.stamp()
    if not args.quiet:
        print(f"stamped {redact_url(url)}")
        print(ident.stamp_summary(versions))
    return EXIT_OK


# -- recon sandbox generate -----------------------------------------------------------------
def _print_summary(summary, out: Path, db_url: str | None) -> None:
    from core.catalog import OBJECTS

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
    from sandbox.generate.run import Options, generate

    settings = _settings(args)
    if args.scenario:
        from sandbox.generate.drift import SCENARIOS

        unknown = sorted(set(args.scenario) - set(SCENARIOS) - {"D26"})
        if unknown:
            raise ReconError(f"--scenario {', '.join(unknown)}: no such drift scenario; "
                             f"give one of {', '.join(sorted({*SCENARIOS, 'D26'}))}")
    opts = Options(
        accounts=args.accounts, seed=args.seed, drift=args.drift, d26=args.d26,
        as_of=args.as_of, tz=args.tenant_tz or settings.tenant_tz, chunk=args.chunk,
        scenarios=tuple(args.scenario) if args.scenario else None, fmt=args.format,
    )
    summary = generate(opts, Path(args.out), args.db, progress=_progress(args),
                       replace=args.replace)
    if not args.quiet:
        _print_summary(summary, Path(args.out), args.db)
    return EXIT_OK


def first_invalid_utf8(root: Path) -> tuple[Path, int, int] | None:
    """The first (file, line, byte) under ``root`` that is not UTF-8 — text files only
    (JSON Lines, JSON, CSV); only called once reading a dataset has failed on a decode."""
    for path in sorted(p for p in root.rglob("*") if p.is_file()
                       and p.suffix in (".jsonl", ".json", ".csv")):
        with path.open("rb") as fh:
            for n, line in enumerate(fh, 1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as e:
                    return path, n, line[e.start]
    return None


def cmd_sandbox_serve(args: argparse.Namespace) -> int:
    from core.errors import DatasetError
    from sandbox.server import serve

    settings = _settings(args)
    try:
        serve(args.data, port=args.port, tenant_tz=args.tenant_tz, faults=args.faults,
              client_id=settings.zuora_client_id,
              client_secret=settings.zuora_client_secret.get() or "sandbox-secret")
    except (UnicodeDecodeError, ValueError, OSError) as e:
        bad = first_invalid_utf8(Path(args.data)) if not isinstance(e, OSError) else None
        if bad is not None:
            path, line, byte = bad
            raise DatasetError(
                f"--data {args.data}: {path} line {line} is not UTF-8 (byte 0x{byte:02x}); the "
                "sandbox serves UTF-8 datasets: fix or remove that record, or regenerate the "
                "dataset (`recon sandbox generate`)") from e
        if isinstance(e, OSError):
            raise DatasetError(f"--data {args.data} / --port {args.port}: {e.strerror or e}; "
                               "check the dataset is readable and the port is free") from e
        raise
    return EXIT_OK


# -- recon extract --------------------------------------------------------------------------
def cmd_extract(args: argparse.Namespace) -> int:
    from jobs.lineage import extract_step

    settings = _settings(args)
    lag = args.lag_hours if args.lag_hours is not None else settings.extract_lag_hours
    from core.catalog import get

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
    from repair.planner import build_plan, summary_text, write_plan

    settings = _settings(args)
    run = args.run or resolve_snapshot(settings.data_dir, None).run_id
    plan = build_plan(settings.data_dir, run, only=args.only,
                      local_database_url=settings.local_database_url)
    out = Path(args.out) if args.out else run_dir(settings.data_dir, plan["run_id"]) / (
        f"repair-plan{'-' + args.only if args.only else ''}.json")
    write_plan(plan, out)
    text = summary_text(plan)
    _write_text(out.with_suffix(".txt"), text + "\n")
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

    from core.config import Secret
    from core.layout import DataLayout
    from core.localdb.connect import duckdb_url
    from jobs.lineage import extract_step, validate_recorded
    from sandbox.generate.run import Options, generate
    from sandbox.server import SandboxServer

    t_start = time.perf_counter()
    settings = _settings(args)
    data = Path(args.data_dir or settings.data_dir)
    tenant = DataLayout(data).demo
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
    from core.layout import PLAN_FILE
    from repair.apply import apply_plan
    from repair.planner import build_plan, summary_text, write_plan

    if progress:
        progress("plan repairs")
    plan = build_plan(data, run_id, local_database_url=settings.local_database_url)
    path = write_plan(plan, run_dir(data, run_id) / PLAN_FILE)
    _write_text(path.with_suffix(".txt"), summary_text(plan) + "\n")
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
        "environment variables; see README. Exit codes: 0 done, nothing needs a person; 1 "
        "done, findings or skipped operations need a person; 2 could not do what was asked.",
    )
    p.add_argument("--config", type=PathArg(IN_FILE),
                   help="TOML config file (default: $RECON_CONFIG or ./recon.toml)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    p.add_argument("--progress", action="store_true", help="progress on stderr even in cron")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    cfg = sub.add_parser("config", help="show the effective configuration (secrets masked)")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True)
    cfg_sub.add_parser("show", help="print settings as JSON").set_defaults(func=cmd_config_show)

    db = sub.add_parser("db", help="local database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    init = db_sub.add_parser("init", help="create the local schema and stamp it (idempotent; "
                             "upgrades recon's own objects)")
    init.add_argument("--db", help="local database URL (default: config local.database_url)")
    init.add_argument("--print", action="store_true", help="print the DDL instead")
    init.add_argument("--dialect", choices=("postgres", "duckdb"), default="postgres",
                      help="dialect for --print")
    init.set_defaults(func=cmd_db_init)
    stamp = db_sub.add_parser(
        "stamp", help="create/upgrade only recon's own objects and the database's identity",
        description="For a local database whose schema the application owns: create or "
        "upgrade recon's own objects (identity, schema version, repair audit) and nothing "
        "else; idempotent. Repair plans are bound to the identity.")
    stamp.add_argument("--db", help="local database URL (default: config local.database_url)")
    stamp.set_defaults(func=cmd_db_stamp)

    sb = sub.add_parser("sandbox", help="the Zuora sandbox: tenant generator")
    sb_sub = sb.add_subparsers(dest="sandbox_command", required=True)
    gen = sb_sub.add_parser("generate", help="generate a Zuora tenant and its local copy with "
                            "labelled drift")
    _generate_args(gen)
    gen.add_argument("--out", required=True, type=PathArg(OUT_DIR),
                     help="dataset directory to write (new, empty or an earlier tenant, "
                     "replaced at the end)")
    gen.add_argument("--db", help="local database URL (default: DuckDB file in --out); its "
                     "local tables must be empty")
    gen.add_argument("--replace", action="store_true",
                     help="drop and recreate recon's local tables in --db when they hold data")
    gen.add_argument("--tenant-tz", type=zone,
                     help="tenant time zone (default: config tenant_tz)")
    gen.add_argument("--chunk", type=COUNT, default=20_000,
                     help="accounts generated per chunk (memory bound)")
    gen.add_argument("--format", choices=("jsonl", "parquet"), default="jsonl",
                     help="Zuora-side file format (Parquet is smaller for large tenants)")
    gen.add_argument("--scenario", action="append",
                     help="only this drift scenario (repeatable), e.g. --scenario D11")
    gen.set_defaults(func=cmd_sandbox_generate)

    srv = sb_sub.add_parser("serve", help="serve a dataset over Zuora's API shapes (loopback)")
    srv.add_argument("--data", required=True, type=PathArg(IN_DIR),
                     help="dataset directory (see README)")
    srv.add_argument("--port", type=PORT, default=8808, help="TCP port on 127.0.0.1")
    srv.add_argument("--tenant-tz", type=zone,
                     help="tenant time zone (default: the dataset's)")
    srv.add_argument("--faults", help="fault spec, e.g. aqua_file:truncate_csv:1,oauth:429:2")
    srv.set_defaults(func=cmd_sandbox_serve)

    ex = sub.add_parser("extract", help="export Zuora and the local tables into a snapshot")
    ex.add_argument("--mode", choices=("full", "incremental"),
                    help="default: config extract.mode (incremental), with a full export at "
                    "least every extract.full_every_days (7)")
    ex.add_argument("--allow-empty", action="append", metavar="OBJECT",
                    help="accept a zero-row export of OBJECT (repeatable or comma-separated)")
    ex.add_argument("--lag-hours", type=HOURS,
                    help="incremental upper bound: now minus this many hours "
                    "(default: config extract.lag_hours, 2)")
    ex.set_defaults(func=cmd_extract)

    from jobs import validate_cmd

    validate_cmd.add_parser(sub)

    rec = sub.add_parser("reconcile", help="diff a complete snapshot and apply the rules")
    rec.add_argument("--run", help="snapshot run id (default: the latest complete snapshot)")
    rec.add_argument("--grace-hours", type=HOURS,
                     help="Zuora changes this recent are pending, not drift (default: config "
                     "reconcile.grace_hours, 2)")
    rec.add_argument("--fail-on-drift", action="store_true",
                     help="exit 1 when drift (auto or human findings) exists")
    rec.set_defaults(func=cmd_reconcile)

    from jobs.repair_cmd import add_parser as add_repair_parser
    from jobs.run_cmd import add_parsers as add_job_parsers

    add_job_parsers(sub)
    __import__("jobs.snapshots_cmd").snapshots_cmd.add_parser(sub)

    repair_sub = add_repair_parser(sub)
    rplan = repair_sub.add_parser("plan", help="plan repairs of a reconciled run (writes only "
                                  "the plan file)")
    rplan.add_argument("--run", help="run id (default: the latest complete snapshot)")
    rplan.add_argument("--only", metavar="OBJECT|RULE",
                       help="only findings of this object, local table or rule (e.g. D11)")
    rplan.add_argument("--out", metavar="PLAN", type=PathArg(OUT_FILE),
                       help="plan file (default: DATA/runs/<run>/repair-plan.json)")
    rplan.set_defaults(func=cmd_repair_plan)

    from jobs import report_cmd

    report_cmd.add_parser(sub)

    demo = sub.add_parser("demo", help="run the main job on the embedded defaults")
    _generate_args(demo, accounts=2_000, drift=0.02)
    demo.add_argument("--data-dir", type=PathArg(OUT_DIR),
                      help="where to write (default: config data_dir)")
    demo.add_argument("--fresh", action="store_true",
                      help="regenerate the demo tenant even if one with these options exists")
    demo.add_argument("--apply", action="store_true",
                      help="apply the repair plan to the demo's own local DuckDB copy (never "
                      "anything else); the next demo then shows those findings resolved")
    demo.set_defaults(func=cmd_demo)
    return p


def _generate_args(p: argparse.ArgumentParser, accounts: int = 1_000, drift: float = 0.0) -> None:
    p.add_argument("--accounts", type=COUNT, default=accounts, help="number of Zuora accounts")
    p.add_argument("--seed", type=SEED, default=1, help="random seed (same seed, same tenant)")
    p.add_argument("--drift", type=DRIFT, default=drift,
                   help="fraction of subscriptions that get drift, spread over D01–D25")
    p.add_argument("--d26", type=SHARE, default=0.02,
                   help="rate of normalisation-only differences (must not be reported)")
    p.add_argument("--as-of", type=_date, default=dt.date(2026, 11, 1),
                   help="the tenant's 'today' (fixed by default, for reproducibility)")


def _write_text(path: Path, text: str) -> None:
    """Write aside, rename at the end: a failed write never leaves half a file."""
    from reports.atomic import write_text_atomic

    write_text_atomic(path, text)


# a URL's password, wherever it appears in a crash log (argv, exception messages)
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]+:)[^@\s]+@", re.IGNORECASE)


def _crash_dir(args: argparse.Namespace | None) -> Path:
    """``DATA/crash`` when the data directory is usable, else a temp directory."""
    from core.layout import DataLayout

    candidates: list[Path] = []
    if args is not None and getattr(args, "data_dir", None):
        candidates.append(Path(args.data_dir))
    try:
        candidates.append(Path(load_settings(getattr(args, "config", None)).data_dir))
    except Exception:  # noqa: BLE001 — the settings may be what is broken
        pass
    for data in candidates:
        try:
            d = DataLayout(data).crash
            d.mkdir(parents=True, exist_ok=True)
            return d
        except OSError:
            continue
    d = Path(tempfile.gettempdir()) / "recon-crash"
    d.mkdir(parents=True, exist_ok=True)
    return d


def write_crash_log(error: BaseException, argv: Sequence[str] | None,
                    args: argparse.Namespace | None) -> Path | None:
    """The traceback of an unexpected error, with the command line (passwords in URLs masked),
    at ``DATA/crash/<UTC timestamp>-<pid>.log``; None when nothing could be written."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    words = list(sys.argv[1:] if argv is None else argv)
    text = (f"recon crash at {stamp}, pid {os.getpid()}, python {sys.version.split()[0]}\n"
            f"command: recon {' '.join(words)}\n\n"
            + "".join(traceback.format_exception(error)))
    text = _URL_PASSWORD.sub(r"\1***@", text)
    for attempt in (lambda: _crash_dir(args),
                    lambda: Path(tempfile.gettempdir()) / "recon-crash"):
        try:
            d = attempt()
            d.mkdir(parents=True, exist_ok=True)
            path = (d / f"{stamp}-{os.getpid()}.log").absolute()
            path.write_text(text)
            return path
        except Exception:  # noqa: BLE001 — never let the crash log hide the crash
            continue
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, run, map every outcome to an exit code; never raises (argparse's own exit for
    bad input and ``--help`` is returned as its code, so in-process callers get an int)."""
    args: argparse.Namespace | None = None
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as e:  # bad input (2, message printed by argparse) or --help (0)
            return e.code if isinstance(e.code, int) else EXIT_ERROR
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
    except Exception as e:  # noqa: BLE001 — a bug: say so, keep the traceback in a file
        where = write_crash_log(e, argv, args)
        cmd = " ".join(w for w in (getattr(args, "command", None),
                                    *(getattr(args, k, None) for k in _SUBCOMMAND_DESTS)) if w)
        log = f"the traceback is in {where}" if where else "no crash log could be written"
        detail = _URL_PASSWORD.sub(r"\1***@", " ".join(str(e).split()))[:500]
        print(f"recon: error: `recon {cmd or '…'}` stopped on an unexpected "
              f"{type(e).__name__}: {detail}\n  {log}. Check the input it names, or report "
              "this with that file.", file=sys.stderr)
        return EXIT_ERROR


# the argparse ``dest`` of each sub-command level (to name the command in a crash message)
_SUBCOMMAND_DESTS = ("config_command", "db_command", "sandbox_command", "repair_command",
                     "runs_command")


if __name__ == "__main__":
    sys.exit(main())
