"""Export every local table into the snapshot, set-based, in one consistent read.

* **PostgreSQL**: one ``REPEATABLE READ, READ ONLY`` transaction (every table from the same
  MVCC snapshot); each table streams out with ``COPY (SELECT …) TO STDOUT (FORMAT csv)``
  into pyarrow's streaming CSV reader, typed by the catalogue's column types, and into
  Parquet batch by batch. No row ever passes through Python on its own. PostgreSQL's CSV
  keeps NULL (unquoted empty) and ``''`` (quoted) apart, and so does the reader.
* **DuckDB**: one transaction; each table streams out as Arrow record batches
  (``to_arrow_reader``) into the same Parquet writer, so both dialects produce files with
  exactly the same schema.

The database's identity (:mod:`core.localdb.identity`) is read inside the same transaction
as the tables, so the snapshot names exactly the database its rows came from; a repair plan
copies it from the snapshot and ``repair apply`` refuses any other target.

Both produce the same Arrow types, from the catalogue (``core.localdb.schema``):
``VARCHAR(n)`` → string, ``INTEGER`` → int32, ``BIGINT`` → int64, ``BOOLEAN`` → bool,
``DATE`` → date32, ``TIMESTAMP`` → timestamp[us], ``DECIMAL(p,s)`` → decimal128(p,s).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from core.config import redact_url
from core.errors import LocalDatabaseError
from core.localdb import schema
from core.localdb.connect import LocalDB, connect
from core.localdb.dialect import Dialect
from core.localdb.identity import DatabaseIdentity, read_identity
from core.profile import local_enums, local_keys
from core.snapshot import IterStream, ParquetSink, sha256_file

_DECIMAL = re.compile(r"DECIMAL\((\d+),\s*(\d+)\)", re.I)
_VARCHAR = re.compile(r"(VARCHAR|CHARACTER VARYING)(\(\d+\))?|TEXT", re.I)
BLOCK = 8 << 20
ARROW_BATCH_ROWS = 100_000


def arrow_type(local_type: str) -> pa.DataType:
    """The Arrow type of a catalogue SQL type."""
    t = local_type.strip().upper()
    if _VARCHAR.fullmatch(t):
        return pa.string()
    if m := _DECIMAL.fullmatch(t):
        return pa.decimal128(int(m.group(1)), int(m.group(2)))
    simple = {
        "BIGINT": pa.int64(), "INTEGER": pa.int32(), "INT": pa.int32(),
        "SMALLINT": pa.int16(), "BOOLEAN": pa.bool_(), "DATE": pa.date32(),
        "TIMESTAMP": pa.timestamp("us"), "DOUBLE": pa.float64(),
    }
    if t in simple:
        return simple[t]
    raise LocalDatabaseError(f"no Arrow type for the catalogue SQL type {local_type!r}")


def table_schema(table: str) -> pa.Schema:
    return pa.schema([pa.field(c.name, arrow_type(c.local_type), nullable=c.nullable)
                      for c in schema.table_columns(table)])


@dataclass
class TableExport:
    table: str
    rows: int
    bytes: int  # Parquet file size
    sha256: str
    duration_s: float
    path: Path

    def as_dict(self) -> dict:
        return {"rows": self.rows, "bytes": self.bytes, "sha256": self.sha256,
                "duration_s": round(self.duration_s, 3), "file": f"local/{self.path.name}"}


def _finish(table: str, path: Path, started: float) -> TableExport:
    rows = pq.ParquetFile(path).metadata.num_rows
    return TableExport(table, rows, path.stat().st_size, sha256_file(path),
                       time.monotonic() - started, path)


def _select(table: str, cast: bool) -> str:
    cols = schema.table_columns(table)
    if cast:
        return ", ".join(f"CAST({c.name} AS {c.local_type}) AS {c.name}" for c in cols)
    return ", ".join(c.name for c in cols)


@contextlib.contextmanager
def _table_sink(db: LocalDB, table: str, path: Path) -> Iterator[ParquetSink]:
    """A Parquet sink for one table's export: closed when the block succeeds, aborted (no
    partial file) and re-raised as a LocalDatabaseError naming the table when it fails."""
    sink = ParquetSink(path, table_schema(table), unique=local_keys(table),
                       enums=local_enums(table))
    try:
        yield sink
        sink.close()
    except Exception as e:
        sink.abort()
        raise LocalDatabaseError(
            f"local export of {table} from {redact_url(db.url)} failed: "
            f"{type(e).__name__}: {e}") from e


@dataclass
class LocalExport:
    """What one local export produced: per-table statistics and the database's identity
    (None: the database was never stamped), read in the same transaction."""

    tables: dict[str, TableExport]
    identity: DatabaseIdentity | None


def _export_postgres(db: LocalDB, tables: list[str],
                     out_dir: Path) -> tuple[list[TableExport], DatabaseIdentity | None]:
    conn = db.raw
    results = []
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        conn.execute("SET LOCAL DateStyle = 'ISO, YMD'")
        conn.execute("SET LOCAL TimeZone = 'UTC'")
        identity = read_identity(db)
        for table in tables:
            started = time.monotonic()
            schema_ = table_schema(table)
            path = out_dir / f"{table}.parquet"
            with _table_sink(db, table, path) as sink, conn.cursor() as cur, cur.copy(
                f"COPY (SELECT {_select(table, cast=False)} FROM {table}) "
                "TO STDOUT (FORMAT csv, HEADER false)"
            ) as copy:
                stream = IterStream(iter(copy))
                reader = pacsv.open_csv(
                    stream,
                    read_options=pacsv.ReadOptions(
                        column_names=schema_.names, block_size=BLOCK, use_threads=False),
                    convert_options=pacsv.ConvertOptions(
                        column_types={f.name: f.type for f in schema_},
                        true_values=["t", "true"], false_values=["f", "false"],
                        strings_can_be_null=True, quoted_strings_can_be_null=False),
                ) if not stream.empty() else None
                for batch in reader or ():
                    sink.write(batch)
            results.append(_finish(table, path, started))
    return results, identity


def _export_duckdb(db: LocalDB, tables: list[str],
                   out_dir: Path) -> tuple[list[TableExport], DatabaseIdentity | None]:
    con = db.raw
    results = []
    con.execute("BEGIN TRANSACTION")
    try:
        identity = read_identity(db)
        for table in tables:
            started = time.monotonic()
            path = out_dir / f"{table}.parquet"
            with _table_sink(db, table, path) as sink:
                rel = con.sql(f"SELECT {_select(table, cast=True)} FROM {table}")
                for batch in _arrow_reader(rel):
                    sink.write(batch)
            results.append(_finish(table, path, started))
    finally:
        con.execute("COMMIT")
    return results, identity


def _arrow_reader(rel: object) -> object:
    """A streaming Arrow reader over a DuckDB relation (``to_arrow_reader`` in DuckDB 2,
    ``fetch_arrow_reader`` before)."""
    fn = getattr(rel, "to_arrow_reader", None) or rel.fetch_arrow_reader
    return fn(ARROW_BATCH_ROWS)


# each driver's fast path: COPY … TO STDOUT on PostgreSQL, an Arrow stream on DuckDB
_EXPORTERS = {Dialect.POSTGRES: _export_postgres, Dialect.DUCKDB: _export_duckdb}


def export_local_snapshot(url: str, out_dir: Path | str,
                          tables: list[str] | None = None) -> LocalExport:
    """Export ``tables`` (default: every local table, parents first) from the local database
    at ``url`` into ``out_dir/<table>.parquet``, with the database's identity read in the
    same transaction."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = tables or schema.all_tables()
    with connect(url) as db:
        schema.require_columns(db, tables)
        results, identity = _EXPORTERS[db.dialect](db, tables, out)
    return LocalExport({r.table: r for r in results}, identity)


def export_local(url: str, out_dir: Path | str,
                 tables: list[str] | None = None) -> dict[str, TableExport]:
    """Per-table statistics of :func:`export_local_snapshot` (callers without a manifest)."""
    return export_local_snapshot(url, out_dir, tables).tables
