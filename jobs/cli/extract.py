"""``recon extract``: export Zuora and the local tables into a snapshot."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any

from jobs.cli.common import EXIT_OK, add_lag_hours
from jobs.cli.common import progress_of as _progress
from jobs.cli.common import settings_of as _settings
from jobs.cli.exit_codes import NEEDS_A_PERSON


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
        return NEEDS_A_PERSON
    if not args.quiet:
        total = sum(int(v.get("rows", 0)) for v in manifest.zuora.values())
        local = sum(int(v.get("rows", 0)) for v in manifest.local.values())
        print(f"snapshot {manifest.run_id} complete ({manifest.mode}): {total:,} Zuora rows in "
              f"{len(manifest.zuora)} objects, {local:,} local rows in {len(manifest.local)} "
              f"tables, {manifest.duration_s or 0:.1f}s")
    return EXIT_OK


def add_parser(sub: Any) -> None:
    ex = sub.add_parser("extract", help="export Zuora and the local tables into a snapshot")
    ex.add_argument("--mode", choices=("full", "incremental"),
                    help="default: config extract.mode (incremental), with a full export at "
                    "least every extract.full_every_days (7)")
    ex.add_argument("--allow-empty", action="append", metavar="OBJECT",
                    help="accept a zero-row export of OBJECT (repeatable or comma-separated)")
    add_lag_hours(ex)
    ex.set_defaults(func=cmd_extract)
