"""What validation reads: a snapshot or a dataset directory, behind one interface.

* A **snapshot** (``DATA/snapshots/<run_id>/``, has ``manifest.json``): typed Parquet, read a
  frame at a time and only the columns a check needs, so a 100,000-account snapshot never
  sits in memory whole; business-rule views read the Parquet files directly in DuckDB.
* A **dataset** (the generator's format, docs/sandbox.md "Dataset format"): the Zuora side is typed
  here exactly as the extractor types it (``core.values.parse_frame``, rejects included);
  the local side is ``DIR/local.duckdb`` or, for small hand-written fixtures,
  ``DIR/local/<table>.jsonl``: one JSON object per line keyed by local column names, values
  as JSON strings (dates ``YYYY-MM-DD``, timestamps ``YYYY-MM-DD HH:MM:SS[.ffffff]``,
  decimals as strings or numbers), numbers and booleans; an absent key is NULL. Keys that are
  not columns of the table are kept, so the contract reports them (rule ``strict``).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Protocol

import duckdb
import polars as pl
import pyarrow.parquet as pq

from core import dataset
from core.catalog import OBJECTS
from core.errors import DatasetError
from core.localdb import schema as local_schema
from core.profile import read_profile
from core.snapshot import MANIFEST, Snapshot, SnapshotError
from core.values import REJECT_SCHEMA, parse_frame
from expectations.contracts import LOCAL, ZUORA, local_dtype

LOCAL_JSONL_DIR = "local"
LOCAL_DUCKDB = dataset.LOCAL_DB_FILE


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class Source(Protocol):
    """Frames to validate, by (side, name): Zuora object names and local table names."""

    kind: str  # "snapshot" | "dataset"
    path: Path

    def schema(self, side: str, name: str) -> pl.Schema: ...

    def frame(self, side: str, name: str, columns: list[str] | None = None) -> pl.DataFrame: ...

    def rejects(self, obj: str) -> pl.DataFrame: ...

    def null_free(self, side: str, name: str, columns: list[str]) -> set[str]: ...

    def profile(self, side: str, name: str) -> dict[str, Any] | None: ...

    def rows(self, side: str, name: str) -> int: ...

    def row_counts(self) -> dict[tuple[str, str], int]: ...

    def register(self, con: duckdb.DuckDBPyConnection) -> None: ...


def names(scope: str = "all") -> list[tuple[str, str]]:
    """Every (side, name) a source holds: Zuora objects, then local tables. A catalog-only
    snapshot (``Manifest.scope``) holds the catalog and the local rate plans referencing it."""
    if scope == "catalog":
        specs = [s for s in OBJECTS if s.group == "catalog"]
        return ([(ZUORA, s.name) for s in specs] + [(LOCAL, s.table) for s in specs]
                + [(LOCAL, "zuora_local_rate_plans")])
    return [(ZUORA, s.name) for s in OBJECTS] + [(LOCAL, t) for t in local_schema.all_tables()]


class SnapshotSource:
    """A finished snapshot on disk."""

    kind = "snapshot"

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.path = snapshot.path
        self.scope = snapshot.manifest.scope

    def _file(self, side: str, name: str) -> Path:
        p = self.snapshot.zuora_path(name) if side == ZUORA else self.snapshot.local_path(name)
        if not p.is_file():
            raise SnapshotError(
                f"snapshot {self.path} has no {side}/{name}.parquet: it is incomplete; "
                "validate a complete snapshot (recon extract writes one)")
        return p

    def schema(self, side: str, name: str) -> pl.Schema:
        return pl.read_parquet_schema(self._file(side, name))

    def frame(self, side: str, name: str, columns: list[str] | None = None) -> pl.DataFrame:
        p = self._file(side, name)
        if columns is not None:
            present = set(pl.read_parquet_schema(p))
            columns = [c for c in columns if c in present]
        return pl.read_parquet(p, columns=columns)

    def rejects(self, obj: str) -> pl.DataFrame:
        return self.snapshot.read_rejects(obj)

    def null_free(self, side: str, name: str, columns: list[str]) -> set[str]:
        """Columns the Parquet footer proves NULL-free (every row group's statistics count
        zero NULLs), so a not_null rule on them needs no data read. Without statistics a
        column is simply not proven."""
        md = pq.read_metadata(self._file(side, name))
        index = {md.schema.column(i).name: i for i in range(md.num_columns)}
        out = set()
        for col in columns:
            i = index.get(col)
            if i is None:
                continue
            stats = [md.row_group(g).column(i).statistics for g in range(md.num_row_groups)]
            if all(s is not None and s.has_null_count and s.null_count == 0 for s in stats):
                out.add(col)
        return out

    def profile(self, side: str, name: str) -> dict[str, Any] | None:
        """The column profile the extractor wrote into the file's footer (None when the file
        has none, e.g. a snapshot from before profiles: every rule is then read)."""
        return read_profile(self._file(side, name))

    def rows(self, side: str, name: str) -> int:
        return pq.read_metadata(self._file(side, name)).num_rows

    def row_counts(self) -> dict[tuple[str, str], int]:
        return snapshot_row_counts(self.snapshot)

    def register(self, con: duckdb.DuckDBPyConnection) -> None:
        for side, name in names(self.scope):
            con.execute(f"CREATE OR REPLACE VIEW {_quote(name)} AS "
                        f"SELECT * FROM read_parquet({_literal(str(self._file(side, name)))})")


def snapshot_row_counts(snapshot: Snapshot) -> dict[tuple[str, str], int]:
    """Rows per object from the Parquet footers (no data read); missing files are left out."""
    out = {}
    for side, name in names(snapshot.manifest.scope):
        p = snapshot.zuora_path(name) if side == ZUORA else snapshot.local_path(name)
        if p.is_file():
            out[(side, name)] = pq.read_metadata(p).num_rows
    return out


class DatasetSource:
    """A dataset directory, loaded (and the Zuora side typed) on construction."""

    kind = "dataset"

    def __init__(self, root: Path | str, default_tz: str) -> None:
        self.path = Path(root)
        if not (self.path / dataset.ZUORA_DIR).is_dir():
            raise DatasetError(f"{self.path} has no {dataset.ZUORA_DIR}/ directory: not a dataset")
        tenant_file = self.path / dataset.TENANT_FILE
        self.tenant_tz = dataset.read_tenant(self.path).get("tenant_tz", default_tz) \
            if tenant_file.is_file() else default_tz
        self.frames: dict[tuple[str, str], pl.DataFrame] = {}
        self._rejects: dict[str, pl.DataFrame] = {}
        for spec in OBJECTS:
            raw = dataset.read_object(self.path, spec)
            parsed = parse_frame(spec, raw, self.tenant_tz)
            self.frames[(ZUORA, spec.name)] = parsed.frame
            # "$raw" bytes that are not UTF-8 are rejects too, as the extractor makes them
            self._rejects[spec.name] = pl.concat(
                [parsed.rejects, dataset.raw_rejects(spec, raw)], how="diagonal_relaxed")
        self.frames.update(_read_local(self.path))

    def schema(self, side: str, name: str) -> pl.Schema:
        return self.frames[(side, name)].schema

    def frame(self, side: str, name: str, columns: list[str] | None = None) -> pl.DataFrame:
        df = self.frames[(side, name)]
        return df if columns is None else df.select([c for c in columns if c in df.columns])

    def rejects(self, obj: str) -> pl.DataFrame:
        return self._rejects.get(obj, pl.DataFrame(schema=REJECT_SCHEMA))

    def null_free(self, side: str, name: str, columns: list[str]) -> set[str]:
        return set()  # in memory: checking the frame costs nothing worth saving

    def profile(self, side: str, name: str) -> dict[str, Any] | None:
        return None  # no file, no footer: every rule runs on the rows

    def rows(self, side: str, name: str) -> int:
        return self.frames[(side, name)].height

    def row_counts(self) -> dict[tuple[str, str], int]:
        return {k: v.height for k, v in self.frames.items()}

    def register(self, con: duckdb.DuckDBPyConnection) -> None:
        for (_, name), df in self.frames.items():
            con.register(name, df)


def _read_local(root: Path) -> dict[tuple[str, str], pl.DataFrame]:
    db = root / LOCAL_DUCKDB
    jsonl_dir = root / LOCAL_JSONL_DIR
    if db.is_file():
        return _read_local_duckdb(db)
    if jsonl_dir.is_dir():
        return {(LOCAL, t): _read_local_jsonl(jsonl_dir / f"{t}.jsonl", t)
                for t in local_schema.all_tables()}
    raise DatasetError(
        f"dataset {root} has no local side: expected {LOCAL_DUCKDB} or {LOCAL_JSONL_DIR}/"
        "<table>.jsonl (a dataset generated with --db keeps its local side in that database: "
        "extract a snapshot and validate the snapshot instead)")


def _read_local_duckdb(path: Path) -> dict[tuple[str, str], pl.DataFrame]:
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as e:
        raise DatasetError(f"cannot open the local side {path}: {e}") from e
    out = {}
    with contextlib.closing(con):
        present = {r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables").fetchall()}
        for t in local_schema.all_tables():
            if t not in present:
                raise DatasetError(f"{path} has no table {t} (create the schema with recon db init)")
            out[(LOCAL, t)] = con.sql(f"SELECT * FROM {_quote(t)}").pl()
    return out


def _read_local_jsonl(path: Path, table: str) -> pl.DataFrame:
    """Typed by the catalogue in DuckDB (dates, timestamps and decimals parse there); keys that
    are not columns are kept as text so the strict contract names them."""
    declared = {c.name: c.local_type for c in local_schema.table_columns(table)}
    if not path.is_file():
        raise DatasetError(f"{path} is missing: a local/ directory needs one file per table "
                           f"(an empty file for an empty table)")
    if path.stat().st_size == 0 or not path.read_text().strip():
        return pl.DataFrame(schema={n: local_dtype(t) for n, t in declared.items()})
    con = duckdb.connect()
    with contextlib.closing(con):
        try:
            keys = {r[0] for r in con.execute(
                "SELECT DISTINCT unnest(json_keys(json)) FROM read_json_objects(?, "
                "format='newline_delimited')", [str(path)]).fetchall()}
            columns = dict(declared)
            columns.update({k: "VARCHAR" for k in sorted(keys - set(declared))})
            spec = ", ".join(f"{_literal(n)}: {_literal(t)}" for n, t in columns.items())
            return con.sql(
                f"SELECT * FROM read_json({_literal(str(path))}, format='newline_delimited', "
                f"columns={{{spec}}})").pl()
        except duckdb.Error as e:
            raise DatasetError(f"{path}: cannot be read as {table} rows: {e}") from e


def is_snapshot(path: Path) -> bool:
    return (Path(path) / MANIFEST).is_file()
