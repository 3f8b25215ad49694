"""What every command module of ``recon`` shares, declared once: the exit codes (from
:mod:`jobs.cli.exit_codes`), the settings and progress of a parsed command line, atomic text
output, and the options several commands take (``--db``, ``--json``, ``--run``,
``--fail-on-drift``, ``--lag-hours``, ``--log-json``, ``--yes``, ``--force``). The global
options (``--config``, ``-q``, ``--progress``) are declared on the top parser
(:func:`jobs.cli.build_parser`).

A command module registers its sub-commands with ``add_parser(sub)`` and keeps its heavy
imports inside the command functions, so ``recon --help`` stays fast and a command only pays
for what it uses.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from core.commands import CommandContext
from core.config import Settings, load_settings
from jobs.cli.argtypes import HOURS, IN_FILE, PathArg
from jobs.cli.exit_codes import FAILED, NEEDS_A_PERSON, OK

# the names the command modules use (one table: jobs.cli.exit_codes)
EXIT_OK, EXIT_DRIFT, EXIT_ERROR = OK, NEEDS_A_PERSON, FAILED
Progress = Callable[[str], None]


def settings_of(args: argparse.Namespace) -> Settings:
    """The settings of this command line (``--config``, else $RECON_CONFIG or ./recon.toml,
    and RECON_* environment variables)."""
    return load_settings(getattr(args, "config", None))


def context_of(args: argparse.Namespace, **env: str) -> CommandContext:
    """What the commands this command prints share: its ``--config`` (absolute), and
    ``env`` (``RECON_*`` values the pasted command needs, e.g. the demo's data directory)."""
    config = getattr(args, "config", None)
    return CommandContext(Path(config).resolve() if config else None, env)


def progress_of(args: argparse.Namespace) -> Progress | None:
    """Progress lines on stderr on a terminal (unless ``-q``) or with ``--progress``: quiet
    in cron by default."""
    if getattr(args, "progress", False) or (sys.stderr.isatty()
                                            and not getattr(args, "quiet", False)):
        return lambda msg: print(f"  {msg}", file=sys.stderr, flush=True)
    return None


def write_text(path: Path, text: str) -> None:
    """Write aside, rename at the end: a failed write never leaves half a file."""
    from reports.atomic import write_text_atomic

    write_text_atomic(path, text)


class JsonFormatter(logging.Formatter):
    """One JSON object per log line (``--log-json``), for log shippers. A record carrying a
    structured ``event`` (``extra={"event": {...}}``: each job step, each run's end) has its
    fields at the top level beside ts/level/logger/message."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
               "level": record.levelname.lower(), "logger": record.name,
               "message": record.getMessage()}
        event = getattr(record, "event", None)
        if isinstance(event, dict):
            out.update({k: v for k, v in event.items() if k not in out})
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(out, default=str)


def setup_logging(args: argparse.Namespace) -> None:
    """Quiet by default (warnings only); ``--log-json`` for structured logs on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    if getattr(args, "log_json", False):
        handler.setFormatter(JsonFormatter())
        level = logging.INFO
    else:
        handler.setFormatter(logging.Formatter("recon: %(levelname)s %(message)s"))
        level = logging.INFO if getattr(args, "progress", False) else logging.WARNING
    root = logging.getLogger("recon")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def add_global_options(p: argparse.ArgumentParser) -> None:
    """``--config``, ``-q``, ``--progress``: taken before the command by every command."""
    p.add_argument("--config", type=PathArg(IN_FILE),
                   help="TOML config file (default: $RECON_CONFIG or ./recon.toml)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    p.add_argument("--progress", action="store_true", help="progress on stderr even in cron")


# -- shared options -------------------------------------------------------------------------
DB_HELP = "local database URL (default: config local.database_url)"
LAG_HELP = ("incremental upper bound: now minus this many hours (default: config "
            "extract.lag_hours, 2)")


def add_db(p: argparse.ArgumentParser, help: str = DB_HELP) -> None:  # noqa: A002
    p.add_argument("--db", help=help)


def add_json(p: argparse.ArgumentParser, help: str) -> None:  # noqa: A002
    p.add_argument("--json", action="store_true", help=help)


def add_run(p: argparse.ArgumentParser, help: str, **kw: str) -> None:  # noqa: A002
    p.add_argument("--run", help=help, **kw)


def add_fail_on_drift(p: argparse.ArgumentParser, help: str) -> None:  # noqa: A002
    p.add_argument("--fail-on-drift", action="store_true", help=help)


def add_lag_hours(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lag-hours", type=HOURS, help=LAG_HELP)


def add_log_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-json", action="store_true", help="structured JSON logs on stderr")


def add_yes(p: argparse.ArgumentParser) -> None:
    p.add_argument("--yes", action="store_true", help="really write (default: dry run)")
