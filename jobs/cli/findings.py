"""``recon findings``: the findings of reconciled runs, for people and scripts.

This module registers the ``findings`` command group; its sub-commands live in their own
modules so that parts can grow apart: ``ack`` and ``unack`` (:mod:`jobs.cli.findings_ack`:
acknowledge a finding, or take an acknowledgement back). Exit codes: see each sub-command.
"""

from __future__ import annotations

import argparse
from typing import Any

from jobs.cli.findings_ack import add_ack_parsers


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``findings`` and its sub-commands on an ``add_subparsers()`` object."""
    p = sub.add_parser("findings", help="findings of reconciled runs: acknowledge (ack) or "
                       "take an acknowledgement back (unack)",
                       description=__doc__.split("\n\n")[0] if __doc__ else None)
    fsub = p.add_subparsers(dest="findings_command", metavar="SUBCOMMAND", required=True)
    add_ack_parsers(fsub)
    return p
