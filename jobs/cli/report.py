"""``recon report [--run RUN] [--out DIR] [--fail-on-drift] [--mask-pii] [--no-plan]
[--with-applies]``: write a run's drift report.

Writes ``report.html`` (one self-contained page) and ``report.json`` (its machine-readable twin)
into ``DATA/runs/<run_id>/`` (or ``--out DIR``) and prints the banner and the paths. Without
``--run``: the newest run, a failed extract included (its report says PARTIAL — NOT
RECONCILED). Exit codes (``jobs.cli.exit_codes``): 0 written; with ``--fail-on-drift`` the banner
decides: 1 DRIFT, 2 ERROR or PARTIAL; 2 when no report can be written (each file is written
aside and renamed, so a failure leaves the previous report whole).

Imports of ``reports`` happen inside :func:`run`, so ``recon --help`` stays fast.
"""

from __future__ import annotations

import argparse
from typing import Any

from core.config import Settings
from jobs.cli.argtypes import OUT_DIR, PathArg
from jobs.cli.common import EXIT_OK, add_fail_on_drift, add_run
from jobs.cli.common import settings_of as _settings


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``report`` on an ``add_subparsers()`` object."""
    p = subparsers.add_parser(
        "report", help="write a run's drift report (self-contained HTML + JSON)",
        description=__doc__.split("\n\n")[1] if __doc__ else None)
    add_run(p, "run id, or an attempt's or snapshot's id (default: the newest run)",
            metavar="RUN")
    p.add_argument("--out", metavar="DIR", type=PathArg(OUT_DIR),
                   help="directory to write report.html and report.json into (default: "
                   "DATA/runs/<run_id>/)")
    add_fail_on_drift(p, "exit 1 on DRIFT, 2 on ERROR or PARTIAL (the banner's exit code)")
    p.add_argument("--mask-pii", action="store_true",
                   help="mask e-mail addresses (for reports that leave the team)")
    p.add_argument("--no-plan", action="store_true",
                   help="accepted for compatibility: the report shows the run's saved repair "
                        "plan only and never builds one")
    p.add_argument("--with-applies", action="store_true",
                   help="also read this run's repair applies (and a PostgreSQL callout inbox's "
                        "health) from the local database")
    p.set_defaults(func=_from_args)
    return p


def _from_args(args: argparse.Namespace) -> int:
    return run(args, _settings(args))


def run(args: argparse.Namespace, settings: Settings) -> int:
    from jobs.runs import resolve_run
    from reports import build_report

    # the run id (or an attempt's, a snapshot's): the attempt that reconciled, shown as such
    ref = resolve_run(settings.data_dir, args.run) if args.run else None
    paths = build_report(settings.data_dir, ref.target if ref else None, settings=settings,
                         out_dir=args.out, mask_pii=args.mask_pii,
                         read_applies=args.with_applies, job_run_id=ref.attempt if ref else None)
    if not getattr(args, "quiet", False):
        print(f"{paths.label}: report of run {paths.run_id} ({paths.findings:,} findings rows, "
              f"{paths.html_bytes / 1e6:.1f} MB, {paths.seconds:.1f}s)")
        if paths.banner != "PARTIAL":
            s = paths.summary
            print(f"  {s['new']:,} new, {s['persisting']:,} persisting, {s['resolved']:,} "
                  f"resolved, {s['pending']:,} pending; {s['auto']:,} auto, {s['human']:,} "
                  f"need a person; {s['validation_failures']:,} validation failures, "
                  f"{s['quarantined_rows']:,} rows quarantined")
        if paths.plan_note:
            print(f"  repair: {paths.plan_note}")
        print(f"report: {paths.html}")
        print(f"json:   {paths.json}")
    return paths.exit_code if args.fail_on_drift else EXIT_OK
