"""``recon config show``: the effective configuration as JSON, secrets masked."""

from __future__ import annotations

import argparse
import json
from typing import Any

from jobs.cli.common import EXIT_OK
from jobs.cli.common import settings_of as _settings


def cmd_config_show(args: argparse.Namespace) -> int:
    print(json.dumps(_settings(args).describe(), indent=2))
    return EXIT_OK


def add_parser(sub: Any) -> None:
    cfg = sub.add_parser("config", help="show the effective configuration (secrets masked)")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True)
    cfg_sub.add_parser("show", help="print settings as JSON").set_defaults(func=cmd_config_show)
