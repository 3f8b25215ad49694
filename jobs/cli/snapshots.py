"""``recon snapshots [--json]`` and ``recon snapshots accept RUN --reason TEXT``: the snapshot
lineage for people — every snapshot with its status, validation verdict, the base it was built
on and why it was full or incremental — and the operator's acceptance of a real drop.

Exit codes: 0 listed / accepted; 2 the snapshot does not exist or cannot be accepted (the
message says why).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from jobs.cli.common import EXIT_OK, add_json
from jobs.cli.common import settings_of as _settings


def cmd_snapshots(args: argparse.Namespace) -> int:
    from jobs.lineage import accept, snapshot_rows

    settings = _settings(args)
    if args.snapshots_command == "accept":
        v = accept(settings, args.run, args.reason)
        if not args.quiet:
            print(f"snapshot {args.run}: verdict {v.verdict} (volume drop accepted: "
                  f"{v.accept_reason!r}); it is now a base and a volume baseline")
        return EXIT_OK
    rows = snapshot_rows(settings.data_dir)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return EXIT_OK
    if not rows:
        print("no snapshots yet")
        return EXIT_OK
    _print(rows)
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
    sn.set_defaults(func=cmd_snapshots, snapshots_command=None)
    acc.set_defaults(func=cmd_snapshots)
