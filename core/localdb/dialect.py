"""What differs between the two local databases, PostgreSQL and DuckDB, in one place.

recon speaks to a production PostgreSQL and to an embedded DuckDB (the default, the demo and
most tests) through the same code. The SQL they accept differs in a handful of small ways —
parameter markers, how to ask whether a table exists, advisory locks, identities, row locks,
which driver call returns rows — and those used to be answered by ~19 ``if dialect ==
"postgres"`` branches over 8 files. Each answer now lives here, once, and callers ask the
dialect (``db.dialect.placeholder``, ``db.dialect.table_exists_sql``…) instead of branching, so
a third database, or a changed answer, is one edit.

:class:`Dialect` is a ``str`` enum: it compares equal to ``"postgres"``/``"duckdb"``, prints and
serialises as that name (database identities, ``recon db init --dialect``), so code and files
that held the name keep working.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

_SCHEMES = {"duckdb": "duckdb", "postgresql": "postgres", "postgres": "postgres"}


class Dialect(enum.StrEnum):
    POSTGRES = "postgres"
    DUCKDB = "duckdb"

    # -- naming --------------------------------------------------------------------------
    @classmethod
    def named(cls, name: str) -> Dialect:
        """The dialect called ``name``; ``ValueError`` names the known ones."""
        try:
            return cls(name)
        except ValueError:
            raise ValueError(f"unknown dialect {name!r}; expected one of "
                             f"{tuple(d.value for d in cls)}") from None

    @classmethod
    def from_url(cls, url: str) -> Dialect | None:
        """The dialect of a local database URL (``duckdb:///…``, ``postgresql://…``), or None
        for a scheme recon does not speak (the caller words that error)."""
        name = _SCHEMES.get(urlsplit(url).scheme)
        return cls(name) if name else None

    @property
    def label(self) -> str:
        return "PostgreSQL" if self is Dialect.POSTGRES else "DuckDB"

    # -- statements ----------------------------------------------------------------------
    @property
    def placeholder(self) -> str:
        """The parameter marker of the driver (psycopg ``%s``, duckdb ``?``)."""
        return "%s" if self is Dialect.POSTGRES else "?"

    def placeholders(self, n: int) -> str:
        """``n`` parameter markers, comma-separated (a VALUES list)."""
        return ", ".join([self.placeholder] * n)

    @property
    def table_exists_sql(self) -> str:
        """One-row query, one parameter (the table name, in the current schema): truthy when
        the table exists."""
        if self is Dialect.POSTGRES:
            return "SELECT to_regclass(%s) IS NOT NULL"
        return ("SELECT count(*) FROM information_schema.tables WHERE table_name = ? "
                "AND table_schema = current_schema()")

    def xact_lock_sql(self) -> str | None:
        """A statement taking a transaction-scoped advisory lock on one integer parameter, so
        two processes migrating or stamping one database serialise; None where the database
        has no such lock (DuckDB: one writer process per file anyway)."""
        return "SELECT pg_advisory_xact_lock(%s)" if self is Dialect.POSTGRES else None

    @property
    def advisory_locks(self) -> bool:
        """Whether cross-process locks live in the database (PostgreSQL advisory locks on a
        session); else they are files beside the data (:mod:`core.locks`)."""
        return self is Dialect.POSTGRES

    def row_lock_clause(self, alias: str) -> str:
        """`` FOR UPDATE OF alias`` where rows can be locked for the transaction (DuckDB has
        no row locks: its single writer already excludes concurrent changes)."""
        return f" FOR UPDATE OF {alias}" if self is Dialect.POSTGRES else ""

    def lock_timeout_sql(self, timeout: str) -> str | None:
        """Bound how long a statement of this transaction waits for another's row locks (a
        stuck session must fail the batch, not hang the apply); None where writers never wait
        on row locks (DuckDB)."""
        return f"SET LOCAL lock_timeout = '{timeout}'" if self is Dialect.POSTGRES else None

    @property
    def temp_tables_drop_at_commit(self) -> bool:
        """Whether a temporary table can be created ``ON COMMIT DROP`` (PostgreSQL), so no
        explicit drop is needed; DuckDB's live until dropped or the connection closes."""
        return self is Dialect.POSTGRES

    def drop_table_sql(self, table: str) -> str:
        """Drop ``table`` if it exists, with what depends on it (PostgreSQL's foreign keys)."""
        return f"DROP TABLE IF EXISTS {table}{' CASCADE' if self is Dialect.POSTGRES else ''}"

    # -- schema ------------------------------------------------------------------------------
    @property
    def identity_clause(self) -> str | None:
        """How a surrogate ``id`` column gets its values from the database; None where the
        writers assign ids (DuckDB)."""
        return "GENERATED BY DEFAULT AS IDENTITY" if self is Dialect.POSTGRES else None

    @property
    def secondary_structures(self) -> bool:
        """Whether the schema gets secondary indexes and foreign keys. DuckDB's columnar
        engine does not need the indexes, and both slow its bulk loads and updates."""
        return self is Dialect.POSTGRES

    @property
    def identity_fields(self) -> tuple[str, ...]:
        """What a database identity of this dialect records about where it is."""
        return ("database", "system_identifier") if self is Dialect.POSTGRES else ("path",)

    # -- drivers -----------------------------------------------------------------------------
    def fetch(self, raw: Any, sql: str, params: tuple | list | None = None) -> list[tuple]:
        """Rows of ``sql`` on the driver connection ``raw`` ([] for a statement without a
        result): psycopg answers on a cursor, duckdb on the connection."""
        if self is Dialect.POSTGRES:
            with raw.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else []
        return raw.execute(sql, params).fetchall()

    def whereabouts(self, raw: Any) -> dict[str, str]:
        """Where this database is, as it reports it right now (part of its identity):
        PostgreSQL's database name and cluster id, DuckDB's absolute file path."""
        if self is Dialect.POSTGRES:
            name, sysid = self.fetch(raw, "SELECT current_database(), "
                                          "(SELECT system_identifier FROM pg_control_system())")[0]
            return {"database": str(name), "system_identifier": str(sysid)}
        rows = self.fetch(raw, "SELECT path FROM duckdb_databases() "
                               "WHERE database_name = current_database()")
        path = rows[0][0] if rows and rows[0][0] else ":memory:"
        return {"path": path if path == ":memory:" else str(Path(path).resolve())}


def duckdb_path(url: str) -> str:
    """SQLAlchemy's convention: ``duckdb:///rel/path`` is relative to the working directory,
    ``duckdb:////abs/path`` is absolute, ``duckdb:///:memory:`` is in memory."""
    rest = url[len("duckdb://"):]
    if rest.startswith("/"):
        rest = rest[1:]
    return ":memory:" if rest in ("", ":memory:") else rest


def database_file(url: str) -> Path | None:
    """The file a local database URL names: a DuckDB file, else None (PostgreSQL lives on a
    server, an in-memory DuckDB nowhere)."""
    if Dialect.from_url(url) is not Dialect.DUCKDB:
        return None
    path = duckdb_path(url)
    return None if path == ":memory:" else Path(path)
