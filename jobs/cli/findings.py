"""``recon findings [--run RUN] [--status S] [--rule R] [--object O] [--limit N] [--json]``:
the findings of a reconciled run, for a person (a table) or a script (one JSON document,
``docs/json/findings.schema.json``).

The rows are the run's drift output as recon's state stores it (``reconcile.history``: the
same rows as ``DATA/runs/<run>/drift.parquet``, statuses against the previous run included).
``--run`` takes the run id (or an attempt's or snapshot's: :func:`jobs.runs.resolve_run`);
without it, the newest reconciled run. ``--status open`` (the default) is every finding not
resolved (new, persisting, pending); ``all`` adds the resolved ones.

Sub-commands live in their own modules so the parts can grow apart: ``findings ack`` and
``findings unack`` (:mod:`jobs.cli.findings_ack`: acknowledge a finding, or take an
acknowledgement back); without a sub-command the group lists findings.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any

from jobs.cli.argtypes import LIMIT_OR_ALL
from jobs.cli.common import EXIT_ERROR, EXIT_OK, add_json, add_run
from jobs.cli.common import settings_of as _settings
from jobs.cli.findings_ack import add_ack_parsers

STATUS_CHOICES = ("open", "all", "new", "persisting", "pending", "resolved")
# the columns a finding shows in JSON, in order (the drift output's, without its run_id)
FIELDS = ("fingerprint", "status", "severity", "action", "object", "key", "kind", "rule",
          "drift_id", "field", "zuora_value", "local_value", "subscription_name", "account_id",
          "first_seen_run", "zuora_updated", "explanation", "evidence")


def _statuses(choice: str) -> tuple[str, ...]:
    from reconcile.history import FINDING_STATUSES

    if choice == "all":
        return FINDING_STATUSES
    if choice == "open":
        return tuple(s for s in FINDING_STATUSES if s != "resolved")
    return (choice,)


def cmd_findings(args: argparse.Namespace) -> int:
    from core.state import open_read_only
    from jobs import runs
    from jobs.cli.jsonout import emit
    from reconcile.history import findings_of, latest_reconciled, was_reconciled

    settings = _settings(args)
    ref = runs.resolve_run(settings.data_dir, args.list_run) if args.list_run else None
    with open_read_only(settings.data_dir) as con:
        target = ref.target if ref else (latest_reconciled(con) if con is not None else None)
        if target is None:
            print(f"recon: error: no reconciled run in {settings.data_dir}; run `recon run` "
                  "(or `recon extract` and `recon reconcile`) first", file=sys.stderr)
            return EXIT_ERROR
        if con is None or not was_reconciled(con, target):
            print(f"recon: error: run {args.list_run!r} was not reconciled (see `recon runs`; "
                  "`recon findings` without --run reads the newest reconciled run)",
                  file=sys.stderr)
            return EXIT_ERROR
        frame = findings_of(con, target, statuses=_statuses(args.status), rule=args.list_rule,
                            obj=args.object)
    run = ref.run if ref else runs.resolve_run(settings.data_dir, target).run
    total = frame.height
    if args.limit:
        frame = frame.head(args.limit)
    if args.json:
        emit("findings", {
            "run_id": run, "snapshot_run": target,
            "filters": {"status": args.status, "rule": args.list_rule, "object": args.object,
                        "limit": args.limit or None},
            "count": total,
            "findings": [{k: _json_value(r.get(k)) for k in FIELDS}
                         for r in frame.to_dicts()]})
        return EXIT_OK
    _print(run, target, args, frame, total)
    return EXIT_OK


def _json_value(v: Any) -> Any:
    if isinstance(v, dt.datetime):
        return v.replace(tzinfo=dt.UTC).isoformat().replace("+00:00", "Z")
    return v


def _print(run: str, target: str, args: argparse.Namespace, frame: Any, total: int) -> None:
    filters = ", ".join(f"{k} {v}" for k, v in (("rule", args.list_rule), ("object", args.object))
                        if v)
    attempt = f" (attempt {target})" if target != run else ""
    print(f"run {run}{attempt}: {total:,} findings, status {args.status}"
          + (f", {filters}" if filters else "")
          + (f"; the first {frame.height:,} shown" if frame.height < total else ""))
    if frame.height == 0:
        return
    cols = ["status", "severity", "action", "rule", "object", "key", "field", "explanation"]
    rows = [[str(r.get(c) if c != "rule" else (r["rule"] or r["drift_id"]) or "")
             for c in cols] for r in frame.to_dicts()]
    for r in rows:
        r[-1] = " ".join(r[-1].split())[:100]
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(cols)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip())
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def add_parser(sub: Any) -> argparse.ArgumentParser:
    fp = sub.add_parser("findings", help="list a run's findings (table, or --json for scripts); "
                        "ack/unack them",
                        description=__doc__.split("\n\n")[1] if __doc__ else None)
    # own dests: `findings ack` declares --run/--rule too, and argparse would let the
    # sub-command's defaults overwrite the group's values
    add_run(fp, "run id (default: the newest reconciled run)", metavar="RUN", dest="list_run")
    fp.add_argument("--status", choices=STATUS_CHOICES, default="open",
                    help="open (default: new, persisting, pending), all, or one status")
    fp.add_argument("--rule", metavar="R", dest="list_rule",
                    help="only this rule or drift id (e.g. D11)")
    fp.add_argument("--object", metavar="O",
                    help="only this Zuora object or local table (e.g. Subscription, orders)")
    fp.add_argument("--limit", type=LIMIT_OR_ALL, default=0,
                    help="at most N findings (0: all; --json still counts them all)")
    add_json(fp, "print the findings as JSON (docs/json/findings.schema.json)")
    fp.set_defaults(func=cmd_findings, findings_command=None)
    fsub = fp.add_subparsers(dest="findings_command", metavar="SUBCOMMAND", required=False)
    add_ack_parsers(fsub)
    return fp
