"""``recon backfill [--snapshot RUN] [--chunk-accounts N] [--db URL] [--json]``: fill an empty
or partial local copy from a snapshot that passed validation, in chunks of accounts
(:func:`repair.backfill.backfill`).

Resumable: killed at any point, the same command continues after the last committed chunk.
Every chunk is its own audited apply (``recon repair history``; ``recon repair revert
APPLY_ID --yes`` deletes its rows). There is no ``--force``: a backfill only inserts rows the
local copy lacks, whatever fraction of a table that is, and never touches a row that exists.

Exit codes (README): 0 every chunk committed with nothing skipped; 1 some inserts were
skipped (a row appeared meanwhile: conflict, or a referenced row missing; each chunk's apply
lists them); 2 refused (a failed, unvalidated or partial snapshot, an unstamped target, the
repair lock held) or a chunk failed (rolled back; re-run to continue).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

from core.errors import ReconError
from jobs.cli.argtypes import COUNT
from jobs.cli.common import EXIT_ERROR, EXIT_OK, add_db, add_json, progress_of, settings_of
from jobs.cli.exit_codes import NEEDS_A_PERSON


def cmd_backfill(args: argparse.Namespace) -> int:
    from repair.backfill import DEFAULT_CHUNK_ACCOUNTS, backfill

    try:
        settings = settings_of(args)
        if args.db:
            settings = dataclasses.replace(settings, local_database_url=args.db)
        result = backfill(settings, args.snapshot,
                          chunk_accounts=args.chunk_accounts or DEFAULT_CHUNK_ACCOUNTS,
                          progress=progress_of(args))
    except ReconError as e:
        print(f"recon: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    code = NEEDS_A_PERSON if result.skipped else EXIT_OK
    if args.json:
        print(json.dumps(result.as_dict(), indent=2, default=str))
        return code
    if getattr(args, "quiet", False):
        return code
    new = [c for c in result.chunks if c.status != "done_before"]
    print(f"backfill {result.backfill_id}: snapshot {result.run_id}, {len(result.chunks)} "
          f"chunk(s) of up to {result.chunk_accounts:,} accounts (chunk 0: the catalog); "
          f"{len(new)} filled now, {result.done_before} committed by an earlier run; "
          f"{result.ops_applied:,} rows inserted in {result.seconds:.1f}s")
    for table, n in result.inserted.items():
        print(f"  {table:<45} {n:>10,}")
    for c in new:
        if c.conflicts or c.ref_missing:
            print(f"  chunk {c.chunk} ({c.apply_id}): {c.conflicts} conflict(s), "
                  f"{c.ref_missing} referenced row(s) missing — see `recon repair history`")
    print(f"plan: {result.plan_path} ({result.plan_bytes:,} bytes)")
    print("each chunk is an apply in `recon repair history`; undo one with "
          "`recon repair revert APPLY_ID --yes`")
    return code


def add_parser(subparsers: Any) -> None:
    """Add ``backfill`` to ``recon``'s sub-commands."""
    p = subparsers.add_parser(
        "backfill", help="fill an empty or partial local copy from a validated snapshot, "
        "in resumable chunks",
        description="Insert every row the snapshot's Zuora side says the local copy should "
        "hold and it lacks (never updating or deleting a row that exists), in chunks of "
        "accounts, each one audited transaction. Re-run after an interruption to continue.")
    p.add_argument("--snapshot", metavar="RUN",
                   help="snapshot run id (default: the newest that passed validation)")
    p.add_argument("--chunk-accounts", type=COUNT, metavar="N",
                   help="accounts per chunk (default 1000); a re-run continues only with the "
                   "same N")
    add_db(p)
    add_json(p, "print the result as JSON")
    p.set_defaults(func=cmd_backfill)
