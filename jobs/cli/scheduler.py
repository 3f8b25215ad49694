"""``recon scheduler``: the long-running scheduler process (:func:`jobs.scheduler.serve`:
APScheduler, the jobs of the ``[schedule]`` config)."""

from __future__ import annotations

import argparse
from typing import Any

from jobs.cli.common import add_log_json, setup_logging
from jobs.cli.common import settings_of as _settings


def cmd_scheduler(args: argparse.Namespace) -> int:
    from jobs.scheduler import serve

    setup_logging(args)
    return serve(_settings(args))


def add_parser(sub: Any) -> None:
    sch = sub.add_parser("scheduler", help="long-running scheduler (APScheduler, jobs from "
                         "the [schedule] config)")
    add_log_json(sch)
    sch.set_defaults(func=cmd_scheduler)
