"""PostgreSQL test equipment shared by the fixtures: a schema of one's own, and a tenant's
local side loaded into it (written once: tests/conftest.py, the jobs, sync and callout
fixtures all use these)."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict


def to_url(params: dict[str, object]) -> str:
    """libpq parameters → a ``postgresql://`` URL (what ``core.localdb.connect`` accepts).

    Everything but the database name goes into the query string, which libpq accepts for any
    parameter, so socket directories and ``options`` need no special casing.
    """
    params = {k: str(v) for k, v in params.items() if v is not None}
    dbname = params.pop("dbname", "")
    query = urlencode(params, quote_via=quote)
    return f"postgresql:///{quote(dbname, safe='')}" + (f"?{query}" if query else "")


@contextlib.contextmanager
def pg_schema(pg_dsn: str, prefix: str = "t") -> Iterator[str]:
    """A fresh schema in ``pg_dsn``'s database, as a URL whose ``search_path`` is it (so
    tables created through it are private to its user); dropped afterwards."""
    schema = f"{prefix}_{secrets.token_hex(6)}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    params = conninfo_to_dict(pg_dsn)
    options = " ".join(filter(None, [str(params.get("options") or ""),
                                     f"-csearch_path={schema}"]))
    try:
        yield to_url({**params, "options": options})
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(schema)))


def outside_write(db_or_url: Any, sql: str, params: tuple | list | None = None,
                  who: str = "tests") -> None:
    """One statement written as an outside writer (an administrator, the application) would
    write the local copy: BEGIN; the escape hatch's mark (``hatch:<who>``, README "Local copy
    guards"); the statement; COMMIT. Tests that plant drift use this rather than switching
    the guards off (on DuckDB the mark is a no-op). ``db_or_url``: a LocalDB or a URL."""
    from core.localdb.connect import connect
    from core.localdb.writer import mark

    def write(db: Any) -> None:
        with db.transaction():
            mark(db, "hatch", who)
            db.execute(sql, params)

    if isinstance(db_or_url, str):
        with connect(db_or_url) as db:
            write(db)
    else:
        write(db_or_url)


def load_local_side(tenant: Path, url: str) -> None:
    """The generated tenant's local side (its ``local.duckdb``) loaded into the database at
    ``url``: recon's schema created, every table copied, identity sequences moved past the
    loaded ids."""
    from core.localdb.connect import connect, duckdb_url
    from core.localdb.schema import all_tables

    with connect(duckdb_url(tenant / "local.duckdb")) as src, connect(url) as dst:
        dst.init_schema()
        with dst.writing("load", "tests"):  # the loader of a database recon manages
            for table in all_tables():
                dst.load(table, src.read_table(table))
        dst.reset_identities()
