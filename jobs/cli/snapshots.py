"""``recon snapshots [--json]``, ``recon snapshots accept RUN --reason TEXT`` and ``recon
snapshots prune [--keep-days N] [--dry-run] [--json]``: the snapshot lineage for people —
every snapshot with its status, validation verdict, the base it was built on and why it was
full or incremental —, the operator's acceptance of a real drop, and retention
(:mod:`jobs.retention`: old snapshots go, the ones still needed stay, each with why).

Exit codes: 0 listed / accepted / pruned; 2 the snapshot does not exist or cannot be accepted,
or no retention was given (the message says why).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from core.layout import DataLayout
from jobs.cli.argtypes import FloatRange
from jobs.cli.common import EXIT_ERROR, EXIT_OK, add_json, context_of
from jobs.cli.common import settings_of as _settings
from jobs.cli.jsonout import emit

DAYS = FloatRange(0, 36_500, "a number of days")


def cmd_snapshots(args: argparse.Namespace) -> int:
    from jobs.lineage import accept, snapshot_rows

    settings = _settings(args)
    if args.snapshots_command == "accept":
        v = accept(settings, args.run, args.reason)
        if not args.quiet:
            print(f"snapshot {args.run}: verdict {v.verdict} (volume drop accepted: "
                  f"{v.accept_reason!r}); it is now a base and a volume baseline")
        return EXIT_OK
    if args.snapshots_command == "prune":
        return _prune(args, settings)
    rows = snapshot_rows(settings.data_dir)
    if args.json:
        from jobs.retention import dir_bytes

        layout = DataLayout(settings.data_dir)
        for r in rows:
            path = (layout.snapshot_dir(r["run_id"]) if r["status"] == "complete"
                    else layout.failed_snapshot_dir(r["run_id"]))
            r["path"] = str(path.resolve())
            r["bytes"] = dir_bytes(path) if path.is_dir() else 0
        emit("snapshots", {"data_dir": str(Path(settings.data_dir).resolve()),
                           "snapshots": rows})
        return EXIT_OK
    if not rows:
        print("no snapshots yet")
        return EXIT_OK
    _print(rows)
    return EXIT_OK


def _prune(args: argparse.Namespace, settings: Any) -> int:
    from jobs.retention import prune_snapshots

    days = args.keep_days if args.keep_days is not None else settings.snapshots_keep_days
    if days <= 0 and args.keep_days is None:
        print("recon: error: no retention given: pass --keep-days N, or set "
              "snapshots.keep_days (RECON_SNAPSHOTS_KEEP_DAYS)", file=sys.stderr)
        return EXIT_ERROR
    res = prune_snapshots(settings, days, dry_run=args.dry_run)
    if args.json:
        emit("snapshots prune", res.as_dict())
        return EXIT_OK
    if args.quiet:
        return EXIT_OK
    verb = "would remove" if res.dry_run else "removed"
    print(f"{verb} {len(res.removed)} snapshot(s) older than {days:g} days under "
          f"{res.data_dir} ({res.bytes_freed / 1e6:.1f} MB)")
    for i in res.removed:
        print(f"  {i.run_id:<40} {i.status:<9} {i.age_days:>6.1f} days  {i.path}")
    if res.kept:
        print(f"kept {len(res.kept)} older snapshot(s) still needed:")
        for i in res.kept:
            print(f"  {i.run_id:<40} {i.age_days:>6.1f} days  {i.reason}")
    if res.dry_run and res.removed:
        print(f"nothing was removed; to remove them: "
              f"{context_of(args).command('snapshots', 'prune', '--keep-days', f'{days:g}')}")
    return EXIT_OK


def _print(rows: list[dict[str, Any]]) -> None:
    cols = ["run_id", "status", "scope", "mode", "verdict", "base_run_id", "why"]
    cells = [[("-" if r[c] is None else str(r[c])) for c in cols] for r in rows]
    widths = [max([len(c)] + [len(x[i]) for x in cells]) for i, c in enumerate(cols[:-1])]
    print("  ".join(c.upper().ljust(w) for c, w in zip(cols[:-1], widths, strict=True))
          + "  WHY")
    for r, x in zip(rows, cells, strict=True):
        marks = "  (current marks)" if r["current_marks"] else ""
        print("  ".join(v.ljust(w) for v, w in zip(x[:-1], widths, strict=True))
              + "  " + x[-1] + marks)
        if r["verdict"] in ("failed", "accepted", "not usable") and r["message"]:
            print(f"    {r['verdict']}: {r['message']}")
        if r["accepted_reason"]:
            print(f"    accepted {r['accepted_at']} by {r['accepted_by'] or '?'}: "
                  f"{r['accepted_reason']}")


def add_parser(sub: Any) -> None:
    sn = sub.add_parser("snapshots", help="every snapshot: status, validation verdict, the "
                        "base it built on and why (full or incremental)")
    add_json(sn, "one JSON array of snapshots")
    sn_sub = sn.add_subparsers(dest="snapshots_command")
    acc = sn_sub.add_parser("accept", help="accept a snapshot's volume drop as real, so it "
                            "becomes a base and the volume baseline")
    acc.add_argument("run", help="the snapshot's run id (see `recon snapshots`)")
    acc.add_argument("--reason", required=True, help="why the drop is real (recorded, shown)")
    pr = sn_sub.add_parser("prune", help="remove snapshots older than N days, keeping the "
                           "ones still needed (the next base, a saved plan's, the marks')")
    pr.add_argument("--keep-days", type=DAYS, metavar="N",
                    help="remove snapshots older than N days (default: config "
                    "snapshots.keep_days)")
    pr.add_argument("--dry-run", action="store_true", help="list what would go; remove "
                    "nothing")
    add_json(pr, "what was removed and kept, as JSON (docs/json/snapshots-prune.schema.json)")
    sn.set_defaults(func=cmd_snapshots, snapshots_command=None)
    acc.set_defaults(func=cmd_snapshots)
    pr.set_defaults(func=cmd_snapshots)
