"""``recon db init`` and ``recon db stamp``: the local database's schema and identity."""

from __future__ import annotations

import argparse
from typing import Any

from core.config import redact_url
from jobs.cli.common import EXIT_OK, add_db
from jobs.cli.common import settings_of as _settings


def cmd_db_init(args: argparse.Namespace) -> int:
    from core.localdb import schema
    from core.localdb.connect import connect

    if args.print:
        print(schema.render(args.dialect))
        return EXIT_OK
    url = args.db or _settings(args).local_database_url
    with connect(url) as db:
        tables = db.init_schema(stamp=False)
        ident, versions = db.stamp()
    if not args.quiet:
        print(f"local schema ready on {redact_url(url)}: {len(tables)} tables")
        print(ident.stamp_summary(versions))
    return EXIT_OK


# -- recon db stamp -------------------------------------------------------------------------
def cmd_db_stamp(args: argparse.Namespace) -> int:
    """recon's own objects and the identity only: for a database whose schema the
    application owns (no application table is created or changed)."""
    from core.localdb.connect import connect, require_exists

    url = args.db or _settings(args).local_database_url
    require_exists(url, "`recon db stamp` marks an existing database; `recon db init` "
                   "creates one")
    with connect(url) as db:
        ident, versions = db.stamp()
    if not args.quiet:
        print(f"stamped {redact_url(url)}")
        print(ident.stamp_summary(versions))
    return EXIT_OK


def add_parser(sub: Any) -> None:
    db = sub.add_parser("db", help="local database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    init = db_sub.add_parser("init", help="create the local schema and stamp it (idempotent; "
                             "upgrades recon's own objects)")
    add_db(init)
    init.add_argument("--print", action="store_true", help="print the DDL instead")
    init.add_argument("--dialect", choices=("postgres", "duckdb"), default="postgres",
                      help="dialect for --print")
    init.set_defaults(func=cmd_db_init)
    stamp = db_sub.add_parser(
        "stamp", help="create/upgrade only recon's own objects and the database's identity",
        description="For a local database whose schema the application owns: create or "
        "upgrade recon's own objects (identity, schema version, repair audit) and nothing "
        "else; idempotent. Repair plans are bound to the identity.")
    add_db(stamp)
    stamp.set_defaults(func=cmd_db_stamp)
