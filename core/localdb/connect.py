"""Connections to the local database, PostgreSQL (production) or DuckDB (embedded default).

The two are wrapped behind one small interface so that schema creation, the generator, the
local export and the repair job do not branch on the dialect for the common operations; the
SQL that differs is answered by ``db.dialect`` (:class:`core.localdb.dialect.Dialect`). Bulk
loads use each engine's fast path: Arrow for DuckDB, ``COPY`` for PostgreSQL.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from core.config import redact_url
from core.errors import LocalDatabaseError
from core.localdb import schema
from core.localdb.dialect import Dialect, database_file, duckdb_path


def require_exists(url: str, hint: str = "create one with `recon db init`") -> None:
    """Refuse a DuckDB URL whose file does not exist (opening it would create an empty
    database); PostgreSQL and in-memory URLs pass."""
    path = database_file(url)
    if path is not None and not path.is_file():
        raise LocalDatabaseError(f"no local database at {duckdb_path(url)}: check "
                                 f"local.database_url ({hint})")


def duckdb_url(path: str | Path) -> str:
    """The ``duckdb://`` URL of a file path (absolute paths get the fourth slash)."""
    return f"duckdb:///{path}"


class LocalDB:
    """One open connection. Use as a context manager; ``close()`` is idempotent."""

    dialect: Dialect

    def __init__(self, url: str) -> None:
        self.url = url
        dialect = Dialect.from_url(url)
        try:
            if dialect is Dialect.DUCKDB:
                self.dialect = dialect
                path = duckdb_path(url)
                if path != ":memory:":
                    Path(path).parent.mkdir(parents=True, exist_ok=True)
                self._duck = duckdb.connect(path)
                self._pg = None
            elif dialect is Dialect.POSTGRES:
                import psycopg

                self.dialect = dialect
                self._pg = psycopg.connect(url, autocommit=True)
                self._duck = None
            else:
                raise LocalDatabaseError(
                    f"unsupported local database URL {redact_url(url)!r}: use duckdb:///path "
                    "or postgresql://user@host/db"
                )
        except LocalDatabaseError:
            raise
        except Exception as e:  # driver errors carry the URL's host but never the password
            raise LocalDatabaseError(
                f"cannot open local database {redact_url(url)}: {type(e).__name__}: {e}"
            ) from e

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        if self._duck is not None:
            self._duck.close()
            self._duck = None
        if self._pg is not None:
            self._pg.close()
            self._pg = None

    def __enter__(self) -> LocalDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def raw(self) -> Any:
        """The driver connection (duckdb or psycopg), for callers that need dialect features."""
        return self._duck if self._duck is not None else self._pg

    # -- statements ------------------------------------------------------------------------
    def execute(self, sql: str, params: tuple | list | None = None) -> None:
        if self._duck is not None:
            self._duck.execute(sql, params)
        else:
            assert self._pg is not None
            self._pg.execute(sql, params)  # type: ignore[arg-type]

    @contextlib.contextmanager
    def transaction(self) -> Iterator[LocalDB]:
        """All statements inside commit together or not at all."""
        if self._duck is not None:
            self._duck.execute("BEGIN TRANSACTION")
            try:
                yield self
            except BaseException:
                self._duck.execute("ROLLBACK")
                raise
            self._duck.execute("COMMIT")
        else:
            assert self._pg is not None
            with self._pg.transaction():
                yield self

    @contextlib.contextmanager
    def writing(self, kind: str, ident: str) -> Iterator[LocalDB]:
        """One transaction marked as recon's write path (:mod:`core.localdb.writer`): the
        local-copy guards let its writes through. For recon's own writers only — a loader of
        a database recon manages (kind ``load``), the backfill — and for the administrators'
        escape hatch (kind ``hatch``)."""
        from core.localdb.writer import mark

        with self.transaction():
            mark(self, kind, ident)
            yield self

    def fetch(self, sql: str, params: tuple | list | None = None) -> list[tuple]:
        """Rows as tuples ([] for a statement without a result), in the caller's
        transaction when there is one."""
        return self.dialect.fetch(self.raw, sql, params)

    def query(self, sql: str, params: tuple | list | None = None) -> pl.DataFrame:
        """Run a query and return a polars frame."""
        if self._duck is not None:
            return self._duck.sql(sql, params=params).pl()
        assert self._pg is not None
        with self._pg.cursor() as cur:
            cur.execute(sql, params)  # type: ignore[arg-type]
            names = [d.name for d in cur.description or []]
            rows = cur.fetchall()
        if not rows:
            return pl.DataFrame({n: [] for n in names})
        return pl.DataFrame(rows, schema=names, orient="row", infer_schema_length=None)

    def read_table(self, table: str) -> pl.DataFrame:
        cols = [c.name for c in schema.table_columns(table)]
        return self.query(f"SELECT {', '.join(cols)} FROM {table}")

    # -- schema ----------------------------------------------------------------------------
    def init_schema(self, stamp: bool = True, guard_tables: Sequence[str] = ()) -> list[str]:
        """Create every local table (idempotent), on PostgreSQL the local-copy guards
        (:mod:`core.localdb.guards`; ``guard_tables``: the mixed tables opted in by
        ``local.guard_tables``) and, with ``stamp``, recon's own objects and the database's
        identity (``recon db init``); returns the catalogue table names."""
        from core.localdb import guards

        for stmt in schema.ddl(self.dialect):
            self.execute(stmt)
        if self.dialect is Dialect.POSTGRES:
            guards.install(self, guards.plan(guard_tables))
        if stamp:
            self.stamp()
        return schema.all_tables()

    def stamp(self) -> tuple[Any, tuple[int, int]]:
        """Create/upgrade only recon's own objects and the identity (``recon db stamp``);
        returns the :class:`~core.localdb.identity.DatabaseIdentity` and the ``(from, to)``
        schema versions of recon's objects."""
        from core.localdb.identity import stamp

        return stamp(self)

    def reset_identities(self) -> None:
        """After loading rows with explicit ids, move PostgreSQL identities past them."""
        if self.dialect.identity_clause is None:  # writers assigned the ids: nothing to move
            return
        for table in schema.all_tables():
            cols = {c.name: c for c in schema.table_columns(table)}
            if "id" in cols and cols["id"].local_type == "BIGINT":
                self.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"COALESCE((SELECT max(id) FROM {table}), 0) + 1, false)"
                )

    # -- bulk load -------------------------------------------------------------------------
    def load(self, table: str, df: pl.DataFrame) -> int:
        """Append ``df`` to ``table``; columns are matched by name, missing ones are NULL.
        On PostgreSQL a table that copies Zuora is guarded: load inside
        :meth:`writing` (kind ``load``) when this is recon loading a database it manages."""
        if df.height == 0:
            return 0
        known = [c.name for c in schema.table_columns(table)]
        unknown = [c for c in df.columns if c not in known]
        if unknown:
            raise LocalDatabaseError(f"{table} has no columns {unknown}; it has {known}")
        cols = [c for c in known if c in df.columns]
        df = df.select(cols)
        col_list = ", ".join(cols)
        if self._duck is not None:
            self._duck.register("_recon_load", df.to_arrow())
            try:
                self._duck.execute(
                    f"INSERT INTO {table} ({col_list}) SELECT {col_list} FROM _recon_load"
                )
            finally:
                self._duck.unregister("_recon_load")
            return df.height
        assert self._pg is not None
        buf = io.BytesIO()
        # PostgreSQL CSV: an unquoted empty field is NULL, a quoted "" is an empty string,
        # so no sentinel can collide with real data.
        df.write_csv(buf, include_header=False, null_value="", quote_style="non_numeric",
                     datetime_format="%Y-%m-%d %H:%M:%S%.f")
        with self._pg.cursor() as cur:
            with cur.copy(
                f"COPY {table} ({col_list}) FROM STDIN (FORMAT csv)"
            ) as copy:
                copy.write(buf.getvalue())
        return df.height


def connect(url: str) -> LocalDB:
    """Open the local database at ``url`` (``duckdb:///path`` or ``postgresql://…``)."""
    return LocalDB(url)
