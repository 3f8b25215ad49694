"""``recon``: the command line. Exit codes (one table for every command,
``jobs.cli.exit_codes``): 0 done and nothing needs a person, 1 done and something needs a person (drift with
``--fail-on-drift``, validation errors, a partial apply, an overdue job), 2 could not do what
was asked. Quiet by default (cron-friendly); progress goes to stderr only on a terminal or with
``--progress``.

No traceback ever reaches the user: :func:`main` turns a :class:`ReconError` into its message,
and any other exception into a one-line message plus a crash log (the traceback) under
``DATA/crash/`` whose path the message gives.

The CLI is a thin layer: one module per command group (``jobs.cli.config``, ``db``,
``sandbox``, ``extract``, ``validate``, ``reconcile``, ``run``, ``runs`` (runs and status),
``findings``, ``scheduler``, ``snapshots``, ``repair``, ``backfill``, ``sync``, ``catalog``, ``report``,
``callouts``, ``demo``), each registering its sub-commands with ``add_parser`` and calling down into the stages and jobs; the exit codes
(``jobs.cli.exit_codes``) and shared options (``jobs.cli.common``) are declared once. The jobs
themselves (``jobs.pipeline``, ``jobs.steps``, ``jobs.scheduler``) never import the CLI."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import sys
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path

from core.config import load_settings
from core.errors import ReconError
from core.layout import DataLayout
from jobs.cli import (
    backfill,
    callouts,
    catalog,
    config,
    db,
    demo,
    extract,
    findings,
    reconcile,
    repair,
    report,
    run,
    runs,
    sandbox,
    scheduler,
    snapshots,
    sync,
    validate,
)
from jobs.cli.common import EXIT_ERROR, EXIT_OK, add_global_options

# in `recon --help` order
COMMAND_GROUPS = (config, db, sandbox, extract, validate, reconcile, run, runs, findings,
                  scheduler, snapshots, repair, backfill, sync, catalog, report, callouts, demo)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="recon",
        description="Reconcile a local copy of Zuora Billing data against Zuora (the source "
        "of truth): extract, validate, diff, report and repair.",
        epilog="Configuration: recon.toml (or --config / RECON_CONFIG) and RECON_* "
        "environment variables; see README. Exit codes: 0 done, nothing needs a person; 1 "
        "done, findings or skipped operations need a person; 2 could not do what was asked.",
    )
    add_global_options(p)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in COMMAND_GROUPS:
        group.add_parser(sub)
    return p


# a URL's password, wherever it appears in a crash log (argv, exception messages)
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]+:)[^@\s]+@", re.IGNORECASE)


def _crash_dir(args: argparse.Namespace | None) -> Path:
    """``DATA/crash`` when the data directory is usable, else a temp directory."""
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
                     "runs_command", "catalog_command", "findings_command")
