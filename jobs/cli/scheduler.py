"""``recon scheduler``: the long-running scheduler process (:func:`jobs.scheduler.serve`:
APScheduler, the jobs of the ``[schedule]`` config)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from jobs.cli.common import add_log_json, setup_logging
from jobs.cli.common import settings_of as _settings


def cmd_scheduler(args: argparse.Namespace) -> int:
    """On a terminal, the schedule, catch-ups and each tick's outcome go to stdout; under
    cron, systemd or Kubernetes (no tty) or with ``-q`` it stays quiet (logs only)."""
    from jobs.scheduler import serve

    setup_logging(args)
    tty = sys.stdout.isatty() and not args.quiet
    return serve(_settings(args),
                 announce=(lambda line: print(line, flush=True)) if tty else None)


def add_parser(sub: Any) -> None:
    sch = sub.add_parser("scheduler", help="long-running scheduler (APScheduler, jobs from "
                         "the [schedule] config)")
    add_log_json(sch)
    sch.set_defaults(func=cmd_scheduler)
