"""``recon db init``, ``recon db stamp`` and ``recon db constrain``: the local database's
schema, identity and the unique keys on orders."""

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


# -- recon db constrain ---------------------------------------------------------------------
def cmd_db_constrain(args: argparse.Namespace) -> int:
    """The unique keys on orders, once the D11 duplicates are gone (PostgreSQL only)."""
    from core.localdb.connect import connect, require_exists
    from repair.constrain import constrain

    url = args.db or _settings(args).local_database_url
    require_exists(url)
    with connect(url) as db:
        result = constrain(db)
    if not args.quiet:
        for name in result.created:
            print(f"created {name} on orders")
        for name in result.present:
            print(f"{name} already in place")
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
    constrain = db_sub.add_parser(
        "constrain", help="add the unique keys on orders once no D11 duplicate remains "
        "(PostgreSQL only)",
        description="Refuses (exit 2) while any duplicate order remains, listing each group "
        "with the keeper D11 would choose; then builds, without a long lock, UNIQUE "
        "(subscription_name, zuora_account_id) (seed 003's key) and a partial unique index on "
        "subscription_name for non-trial orders. Idempotent. On DuckDB it exits 2: there D11 "
        "stays a finding.")
    add_db(constrain)
    constrain.set_defaults(func=cmd_db_constrain)
