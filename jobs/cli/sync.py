"""``recon sync OBJECT KEY… [--dry-run] [--json]``: a targeted sync by key (issue 15).

Re-reads just those records from Zuora and repairs their local copy through the nightly's
normalisation, rules and guarded, audited, revertible repair path (:func:`sync.sync_keys`).
Prints the sync id, what changed (table, op, key, columns) and what is left for a person.

Exit codes (README): 0 the keys are consistent after the sync (a dry run: it could read);
1 ``human`` findings or skipped operations remain (listed); 2 it could not sync.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
from typing import Any

from core.commands import CommandContext
from jobs.cli.common import EXIT_ERROR, context_of, progress_of, settings_of
from jobs.cli.jsonout import document, emit

OBJECT_HELP = ("account ACCOUNT_ID|ACCOUNT_NUMBER…, contact CONTACT_ID…, subscription NAME…, "
               "catalog [PRODUCT_ID…] (no key: the whole catalog)")


def _jsonable(v: Any) -> Any:
    if isinstance(v, dt.datetime):
        return v.isoformat().replace("+00:00", "Z")
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    return v


def result_doc(result: Any, ctx: CommandContext | None = None) -> dict[str, Any]:
    """The :class:`sync.SyncResult` as its ``--json`` document (docs/json/sync.schema.json),
    with the command that undoes it (``next``)."""
    doc = _jsonable(dataclasses.asdict(result))
    doc["seconds"] = round(result.seconds, 3)
    doc["next"] = ([(ctx or CommandContext()).command("repair", "revert", result.sync_id)]
                   if result.apply_id else [])
    return doc


def result_json(result: Any) -> str:
    """The result as JSON text, stamped with its contract's version (``--json``)."""
    return json.dumps(document("sync", result_doc(result)), indent=2, default=str)


def _key(key: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in key.items())


def cmd_sync(args: argparse.Namespace) -> int:
    from sync import SyncError, SyncRequest, sync_keys

    settings = settings_of(args)
    try:
        request = SyncRequest(args.object, tuple(args.keys), dry_run=args.dry_run)
        result = sync_keys(settings, request, progress=progress_of(args))
    except SyncError as e:
        print(f"recon: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    _record(settings, result)
    if args.json:
        emit("sync", result_doc(result, context_of(args)))
        return result.exit_code
    what = f"{result.object} {' '.join(result.keys) or '(whole catalog)'}"
    verb = "would change" if result.dry_run else "changed"
    print(f"sync {result.sync_id}: {what} ({result.trigger}); {len(result.changes)} row(s) "
          f"{verb} in {result.seconds:.1f}s")
    for c in result.changes:
        cols = f" [{', '.join(c.columns)}]" if c.columns else ""
        print(f"  {c.table:<38} {c.op:<6} {_key(c.key)}{cols}")
    if result.missing:
        print(f"  Zuora no longer returns (read twice): {', '.join(result.missing)}")
    if result.leftovers:
        print(f"left for a person ({len(result.leftovers)}):")
        for lo in result.leftovers:
            rule = f" {lo.rule}" if lo.rule else ""
            print(f"  {lo.kind}{rule} {lo.object} {lo.key}: {lo.explanation}")
    if result.apply_id:
        undo = context_of(args).command("repair", "revert", result.sync_id)
        print(f"audit: apply {result.apply_id}; undo with `{undo}` (a dry run; add --yes)")
    return result.exit_code


def _record(settings: Any, result: Any) -> None:
    """Where callouts are received (an inbox exists), a manual sync is recorded as the keys'
    last sync, as a worker's is: the nightly then holds those keys pending instead of writing
    its older snapshot back over them, and `recon callouts status` lists the sync."""
    from core.inbox import inbox_exists, open_inbox

    if result.dry_run or result.exit_code == 2 or not inbox_exists(settings):
        return
    status = "ok" if result.exit_code == 0 else "left"
    with open_inbox(settings) as inbox:
        for key in result.synced_keys or ("*",):
            inbox.record_sync(result.object, key, result.sync_id, result.finished_at, status)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("sync", help="targeted sync by key: re-read records from Zuora and "
                       "repair their local copy (audited, revertible)",
                       description=__doc__.split("\n\n")[1] if __doc__ else None)
    from sync.model import SYNC_OBJECTS

    p.add_argument("object", choices=SYNC_OBJECTS, help=OBJECT_HELP)
    p.add_argument("keys", nargs="*", metavar="KEY", help="the key(s) to sync")
    p.add_argument("--dry-run", action="store_true",
                   help="print what would change; write nothing")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_sync)
