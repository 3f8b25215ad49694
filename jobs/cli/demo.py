"""``recon demo``: the ``full`` job on the embedded defaults, plus the Zuora sandbox.

Generate a drifted tenant (or reuse the one a previous demo made with the same options),
serve it from the Zuora sandbox (in-process, real HTTP on loopback), then run the declared
``full`` sequence (:mod:`jobs.steps`: extract → validate → reconcile → plan → report →
apply-if-allowed) against it and the tenant's local DuckDB — the very steps ``recon run full``
runs, with the demo's settings — and print what each step found. The demo's additions are
shown between the steps, never instead of one: after the plan, a dry run of it against the
demo's local copy; and with ``--apply`` the demo allows the apply step (``repair.auto``) on
that copy only, past the change-fraction guard the small tenant's tiny catalog tables trip.

Reusing the tenant keeps history meaningful: a second demo shows the same findings as
persisting, and after ``--apply`` the next demo shows the repaired ones as resolved. The
demo records no job history (it is not a scheduled job of the data directory).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from core.config import Settings
from core.errors import ReconError
from core.layout import DataLayout
from jobs.cli.argtypes import OUT_DIR, PathArg
from jobs.cli.common import EXIT_ERROR, EXIT_OK, Progress
from jobs.cli.common import progress_of as _progress
from jobs.cli.common import settings_of as _settings
from jobs.cli.sandbox import generate_args, print_summary, require_sandbox

SECRET = "demo-sandbox-secret"


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


@dataclass
class _Show:
    """What the demo prints after each step of the sequence (``run_steps(after=…)``)."""

    args: argparse.Namespace
    tenant: Path
    url: str
    progress: Progress | None
    done: list[str] = field(default_factory=list)
    run: Any = None  # jobs.steps.StepRun, once a step has run

    def __call__(self, step: str, run: Any) -> None:
        self.done.append(step)
        self.run = run
        quiet = self.args.quiet
        if step == "extract" and not quiet:
            m = run.manifest
            zrows = sum(int(v.get("rows", 0)) for v in m.zuora.values())
            lrows = sum(int(v.get("rows", 0)) for v in m.local.values())
            print(f"\nZuora sandbox served {self.tenant} at {self.url}; extracted {zrows:,} "
                  f"Zuora rows and {lrows:,} local rows in {m.duration_s or 0:.1f}s")
            print(f"snapshot: {run.data / 'snapshots' / m.run_id}")
        elif step == "validate" and not quiet:
            res = run.checks.results
            bad = res.filter(res["outcome"] != "passed")
            print(f"validated: {res.height} checks, {bad.height} not passed, "
                  f"{run.checks.quarantined} rows quarantined")
        elif step == "reconcile" and not quiet:
            from jobs.cli.reconcile import print_reconcile

            print()
            print_reconcile(run.result)
        elif step == "plan":
            self._dry_run(run)
        elif step == "apply" and not quiet and run.applied is not None:
            done = run.applied
            print(f"applied to the demo's local copy: {done.ops_applied:,} operations "
                  f"({done.status}, apply {done.apply_id}); run `recon demo` again to see "
                  "the repaired findings resolved")

    def _dry_run(self, run: Any) -> None:
        """The plan dry-run against the demo's local copy (``--force``: the small tenant
        trips the change-fraction guard on its tiny catalog tables; what the guard said is
        printed)."""
        from repair.apply import apply_plan

        if self.progress:
            self.progress("dry run of the repair plan")
        dry = apply_plan(run.plan_path, run.settings, force=True, progress=self.progress)
        if not self.args.quiet:
            plan = run.plan
            print(f"\nrepair plan: {len(plan.operations):,} operations, "
                  f"{len(plan.needs_a_person):,} findings need a person; dry run against "
                  f"the demo's local copy: {dry.ops_applied:,} would apply, "
                  f"{dry.ops_skipped:,} would be skipped ({dry.seconds:.1f}s)")
            for note in dry.notes:
                print(f"  guard: {note}")
            print(f"plan: {run.plan_path}")


def demo_settings(settings: Settings, data: Path, tenant: Path, base_url: str,
                  apply: bool) -> Settings:
    """The demo's settings: the sandbox as Zuora, the tenant's own DuckDB as the local
    database, ``data`` as the data directory, and ``repair.auto`` only with ``--apply``."""
    from core.config import Secret
    from core.localdb.connect import duckdb_url

    return replace(settings, zuora_client_secret=Secret(SECRET), zuora_base_url=base_url,
                   local_database_url=duckdb_url((tenant / "local.duckdb").resolve()),
                   data_dir=data, repair_auto=apply)


def cmd_demo(args: argparse.Namespace) -> int:
    """Generate or reuse the tenant, serve it, run the ``full`` sequence, print a summary."""
    require_sandbox("recon demo")
    from jobs.steps import run_steps
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
            print_summary(summary, tenant, None)
    with SandboxServer(tenant, client_id=settings.zuora_client_id, client_secret=SECRET) as srv:
        srv.store.preload()
        run_settings = demo_settings(settings, data, tenant, srv.url, args.apply)
        show = _Show(args, tenant, srv.url, progress)
        try:
            run_steps("full", run_settings, stop=threading.Event(),
                      progress=progress or (lambda _m: None), force_apply=True, after=show)
        except ReconError:
            if "extract" in show.done and "reconcile" not in show.done:
                # the run stops, but its report still says why (PARTIAL — NOT RECONCILED)
                _partial_report(data, show.run.manifest.run_id, run_settings)
            raise
    run = show.run
    if run.counts.get("repair") == "refused":
        print(f"recon: the demo's repair was refused: {run.counts.get('repair_refusal')}",
              file=sys.stderr)
        return EXIT_ERROR
    if not args.quiet:
        s, result, paths = run.result.summary["by_status"], run.result, run.report
        print(f"\n{paths.label} — {s.get('new', 0):,} new, {s.get('persisting', 0):,} "
              f"persisting, {s.get('resolved', 0):,} resolved since "
              f"{result.previous_run or 'no previous run'}, {s.get('pending', 0):,} pending")
        print(f"report: {paths.html}  ({paths.html_bytes / 1e6:.1f} MB, {paths.seconds:.1f}s)")
        print(f"json:   {paths.json}")
        print(f"demo finished in {time.perf_counter() - t_start:.1f}s")
    return EXIT_OK


def _partial_report(data: Path, run_id: str, settings: Settings) -> None:
    from reports import build_report

    try:
        paths = build_report(data, run_id, settings=settings)
        print(f"{paths.label}: {paths.html}", file=sys.stderr)
    except ReconError as report_error:
        print(f"recon: no report either: {report_error}", file=sys.stderr)


def add_parser(sub: Any) -> None:
    from jobs.cli.sandbox import add_unavailable, sandbox_installed

    if not sandbox_installed():
        add_unavailable(sub, "demo", "run the main job on the embedded defaults")
        return
    demo = sub.add_parser("demo", help="run the main job on the embedded defaults")
    generate_args(demo, accounts=2_000, drift=0.02)
    demo.add_argument("--data-dir", type=PathArg(OUT_DIR),
                      help="where to write (default: config data_dir)")
    demo.add_argument("--fresh", action="store_true",
                      help="regenerate the demo tenant even if one with these options exists")
    demo.add_argument("--apply", action="store_true",
                      help="apply the repair plan to the demo's own local DuckDB copy (never "
                      "anything else); the next demo then shows those findings resolved")
    demo.set_defaults(func=cmd_demo)
