"""``recon db init``, ``db stamp``, ``db guards``, ``db check`` and ``db constrain``: the local
database's schema, identity, read-only guards and the unique keys on orders."""

from __future__ import annotations

import argparse
from typing import Any

from core.config import redact_url
from jobs.cli.common import EXIT_DRIFT, EXIT_OK, add_db, add_json
from jobs.cli.common import settings_of as _settings
from jobs.cli.jsonout import emit


def cmd_db_init(args: argparse.Namespace) -> int:
    from core.localdb import schema
    from core.localdb.connect import connect

    if args.print:
        print(schema.render(args.dialect))
        return EXIT_OK
    from core.localdb import guards

    settings = _settings(args)
    url = args.db or settings.local_database_url
    with connect(url) as db:
        tables = db.init_schema(stamp=False,
                                guard_tables=guards.parse_names(settings.local_guard_tables))
        ident, versions = db.stamp()
        dialect = db.dialect
    if not args.quiet:
        print(f"local schema ready on {redact_url(url)}: {len(tables)} tables")
        print(_guards_summary(guards.for_settings(settings), dialect))
        print(ident.stamp_summary(versions))
    return EXIT_OK


def _guards_summary(gs: Any, dialect: Any) -> str:
    from core.localdb import guards
    from core.localdb.dialect import Dialect

    if dialect is not Dialect.POSTGRES:
        return f"guards: none on DuckDB — {guards.NOT_ENFORCED_ON_DUCKDB}"
    copies = [g.table for g in gs.guards if g.kind == guards.COPY]
    mixed = [g.table for g in gs.guards if g.kind == guards.COLUMNS]
    return (f"guards: {len(copies)} tables read-only to all but recon; "
            f"{len(mixed)} mixed tables column-guarded ({guards.GUARD_TABLES_SETTING}: "
            f"{', '.join(mixed) or 'none'})")


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


# -- recon db guards / db check --------------------------------------------------------------
def cmd_db_guards(args: argparse.Namespace) -> int:
    """Install (default), print or remove the local-copy guards (PostgreSQL)."""
    from core.localdb import guards
    from core.localdb.connect import connect, require_exists

    settings = _settings(args)
    gs = guards.for_settings(settings)
    if args.print:
        print(gs.render(remove=args.remove), end="")
        return EXIT_OK
    url = args.db or settings.local_database_url
    require_exists(url)
    with connect(url) as db:
        if args.remove:
            gone = guards.remove(db)
            if not args.quiet:
                print(f"removed {len(gone)} recon guard trigger(s) and the guard functions "
                      f"from {redact_url(url)}: plain writes to the local copy are no longer "
                      "stopped (`recon db guards` puts them back)")
            return EXIT_OK
        guards.install(db, gs)
        dialect = db.dialect
    if not args.quiet:
        print(f"guards installed on {redact_url(url)}")
        print(_guards_summary(gs, dialect))
    return EXIT_OK


def cmd_db_check(args: argparse.Namespace) -> int:
    """Missing or altered guards, missing columns and recon's schema version: exit 1 when
    something is off."""
    from core.localdb import guards, recon_objects
    from core.localdb.connect import connect, require_exists
    from core.localdb.dialect import Dialect
    from core.localdb.schema import missing_columns

    settings = _settings(args)
    url = args.db or settings.local_database_url
    require_exists(url)
    gs = guards.for_settings(settings)
    with connect(url) as db:
        version = recon_objects.version(db)
        enforced = db.dialect is Dialect.POSTGRES
        found = guards.check(db, gs) if enforced else []
        schema = db.fetch("SELECT current_schema()")[0][0] if enforced else None
        columns = [f"{t}.{c.name} {c.local_type}" for t, c in missing_columns(db)]
        hatch = guards.hatch_writes(db) if version >= 4 else None
    latest = recon_objects.LATEST
    problems = [f for f in found if f.status != guards.OK]
    version_problem = None
    if version < latest:
        version_problem = (f"recon's objects are at schema version {version}, this recon needs "
                           f"{latest}: run `recon db stamp`")
    elif version > latest:
        version_problem = (f"recon's objects are at schema version {version}, written by a "
                           f"newer recon (this one knows {latest}): upgrade recon")
    bad = bool(problems or version_problem or columns)
    if args.json:
        emit("db check", {
            "database": redact_url(url), "dialect": db.dialect.value, "schema": schema,
            "recon_schema_version": version, "recon_schema_version_expected": latest,
            "recon_schema_version_problem": version_problem, "guards_enforced": enforced,
            "guards_note": None if enforced else guards.NOT_ENFORCED_ON_DUCKDB,
            "guards": [f.as_dict() for f in found], "missing_columns": columns,
            "hatch_writes": hatch, "ok": not bad})
        return EXIT_DRIFT if bad else EXIT_OK
    where = f"{redact_url(url)}" + (f" (schema {schema})" if schema else "")
    print(f"local database {where}")
    print(version_problem or f"recon's objects: schema version {version} (current)")
    if columns:
        print(f"columns: {len(columns)} the catalogue declares are missing — "
              + ", ".join(columns) + " (`recon db init` adds them; an application adds them in "
              "its migrations)")
    if not enforced:
        print(f"guards: none — {guards.NOT_ENFORCED_ON_DUCKDB}")
    else:
        n_ok = len(found) - len(problems)
        print(f"guards: {n_ok} of {len(found)} guard functions and triggers as generated"
              + ("" if problems else " (all present and unaltered)"))
        for f in problems:
            print(f"  {f.status.upper():<10} {f.object} {f.name}: {f.detail}")
        if problems:
            print("`recon db guards` re-installs them (or `recon db guards --print` for the "
                  "application's migrations)")
    if hatch and hatch["transactions"]:
        print(f"escape-hatch writes logged: {hatch['transactions']} transaction(s), the latest "
              f"at {hatch['latest_at']} by {hatch['latest_writer']} (recon_hatch_log; the next "
              "reconcile finds what they changed)")
    return EXIT_DRIFT if bad else EXIT_OK


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
    guards = db_sub.add_parser(
        "guards", help="install, print or remove the local-copy guards (PostgreSQL)",
        description="The read-only guards of the local copy, generated from the catalogue "
        "(docs/local-database.md \"Local copy guards\"): without options installs them (idempotent; also "
        "takes out guards local.guard_tables no longer names). PostgreSQL only: DuckDB has no "
        "triggers.")
    add_db(guards)
    guards.add_argument("--print", action="store_true",
                        help="print the DDL (for the application's migrations) instead")
    guards.add_argument("--remove", action="store_true",
                        help="take the guards out (with --print: print that DDL)")
    guards.set_defaults(func=cmd_db_guards)
    check = db_sub.add_parser(
        "check", help="report missing or altered guards and recon's schema version",
        description="Compares the guards installed in the local database with the generated "
        "ones (function bodies, trigger events, columns, enabled) and reports recon's schema "
        "version. Exit 0 when all is as generated, 1 when something is missing or altered.")
    add_db(check)
    add_json(check, "print the result as JSON")
    check.set_defaults(func=cmd_db_check)
