"""``recon config show``: each effective setting, its value (secrets masked) and where it came
from (default, file:PATH, env:VAR or flag)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

from jobs.cli.common import EXIT_OK


def cmd_config_show(args: argparse.Namespace) -> int:
    """Each effective value with where it came from (default, file:PATH, env:VAR, flag)."""
    from core.config import explain_settings

    rows = explain_settings(args.config)
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
        return EXIT_OK
    width = max(len(r.key) for r in rows)
    vwidth = max(len(r.value) for r in rows)
    for r in rows:
        print(f"{r.key:<{width}}  {r.value:<{vwidth}}  {r.source}".rstrip())
    return EXIT_OK


def add_parser(sub: Any) -> None:
    cfg = sub.add_parser("config", help="show the effective configuration (secrets masked)")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True)
    show = cfg_sub.add_parser("show", help="print each setting, its value and where it came "
                              "from (default, file:PATH, env:VAR or flag)")
    show.add_argument("--json", action="store_true",
                      help="a JSON list of {key, setting, env, value, source}")
    show.set_defaults(func=cmd_config_show)
