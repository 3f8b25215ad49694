"""``recon findings ack FINGERPRINT… | --rule R --key K [--until DATE] [--run RUN] --note TEXT``
and ``recon findings unack FINGERPRINT… | --rule R --key K``.

``ack`` acknowledges findings: recon's state (``finding_acks``) records who (the OS user),
when, the note and the values the finding had. Fingerprints are in the report's detail view
(a unique prefix of 8+ characters will do); ``--rule`` takes the finding's rule or likely drift
(a D-id) and ``--key`` its key or subscription name. Each finding is taken from the latest
reconciled run that has it (``--run``: that run). The ack lapses by itself when the finding
resolves, when its values change, or after ``--until`` (a UTC date, inclusive). An
acknowledged finding stays in the report under "acknowledged" and does not alert; repair
ignores acks.

``unack`` removes acknowledgements. Exit codes: 0 done; 2 nothing matched (the message names
what), a resolved finding, a date in the past, no note.
"""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from core.errors import ConfigError
from jobs.cli.common import EXIT_OK
from jobs.cli.common import settings_of as _settings


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _what(p: argparse.ArgumentParser) -> None:
    p.add_argument("fingerprints", nargs="*", metavar="FINGERPRINT",
                   help="finding fingerprints (the report's detail view; a unique prefix of 8+ "
                        "characters)")
    p.add_argument("--rule", metavar="R", help="the findings' rule or likely drift (D-id)")
    p.add_argument("--key", metavar="K", help="the findings' key or subscription name")


def add_ack_parsers(fsub: Any) -> None:
    """Register ``ack`` and ``unack`` on the ``findings`` group's sub-parsers."""
    ack = fsub.add_parser("ack", help="acknowledge findings: they stay in the report, under "
                          "\"acknowledged\", and do not alert until they change",
                          description=__doc__.split("\n\n")[1] if __doc__ else None)
    _what(ack)
    ack.add_argument("--note", required=True, metavar="TEXT",
                     help="why the finding may wait (stored with your user name)")
    ack.add_argument("--until", type=_date, metavar="DATE",
                     help="the ack lapses after this day (YYYY-MM-DD, UTC)")
    ack.add_argument("--run", metavar="RUN",
                     help="take the findings from this run (default: the latest run that has "
                          "each)")
    ack.set_defaults(func=cmd_ack)
    unack = fsub.add_parser("unack", help="take acknowledgements back")
    _what(unack)
    unack.set_defaults(func=cmd_unack)


def _label(r: dict[str, Any]) -> str:
    what = " ".join(x for x in (r["object"], r["key"], r.get("field") or "",
                                r.get("rule") or "") if x)
    return f"{r['fingerprint'][:12]}  {what}"


def _refuse_group_options(args: argparse.Namespace) -> None:
    """``recon findings --run X ack …`` would put X on the listing, not on the ack: refuse
    rather than ack in another run than the one named."""
    misplaced = [f for f, v in (("--run", getattr(args, "list_run", None)),
                                ("--rule", getattr(args, "list_rule", None))) if v]
    if misplaced:
        raise ConfigError(f"{' and '.join(misplaced)} before `{args.findings_command}` "
                          f"belong to the listing; put them after it: recon findings "
                          f"{args.findings_command} … {' '.join(misplaced)} …")


def cmd_ack(args: argparse.Namespace) -> int:
    from core.state import StateDB
    from jobs import runs
    from reconcile.acks import add_acks, select_findings

    _refuse_group_options(args)
    settings = _settings(args)
    # the run id (or an attempt's or snapshot's) → the attempt whose findings are stored
    run = runs.target_of(settings.data_dir, args.run) if args.run else None
    with StateDB(settings.data_dir) as st:
        rows = select_findings(st.con, args.fingerprints, rule=args.rule, key=args.key,
                               run=run)
        acks = add_acks(st, rows, args.note, until=args.until)
    if not args.quiet:
        until = f" until {args.until} (UTC)" if args.until else ""
        print(f"acknowledged {acks.height} finding(s){until}; they lapse when they resolve or "
              "their values change:")
        for r in acks.to_dicts():
            print(f"  {_label(r)}  (run {r['run_id']})")
        print("take it back with: recon findings unack "
              + " ".join(fp[:12] for fp in acks["fingerprint"].to_list()))
    return EXIT_OK


def cmd_unack(args: argparse.Namespace) -> int:
    from core.state import StateDB
    from reconcile.acks import remove_acks

    _refuse_group_options(args)
    settings = _settings(args)
    with StateDB(settings.data_dir) as st:
        gone = remove_acks(st, args.fingerprints, rule=args.rule, key=args.key)
    if not args.quiet:
        print(f"removed {gone.height} acknowledgement(s):")
        for r in gone.to_dicts():
            print(f"  {_label(r)}  (acked by {r['acked_by'] or '?'}: {r['note']})")
    return EXIT_OK
