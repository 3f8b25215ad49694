"""Column metrics of every Parquet file recon writes, kept in the file's own footer.

Parquet statistics already say, per row group, how many NULLs a column has; validation uses
them to pass NOT NULL rules without reading data. The profile adds, like an Iceberg
manifest's column metrics, the facts the contracts (``expectations.contracts``) would
otherwise have to read every row for, measured while the rows are in memory on their way to
disk (Arrow kernels on the batch: lengths come from the offsets, nothing is copied):

* ``max_bytes``: per string column, the longest value in bytes. A string has at least as
  many bytes as characters, so ``max_bytes <= n`` proves a ``VARCHAR(n)`` limit;
* ``distinct``: per enum column (the catalogue's fields with allowed values), its distinct
  values while there are at most :data:`MAX_DISTINCT` of them: an enum rule is checked on
  those few values instead of on every row;
* ``unique``: per key (a column, or a tuple of columns), how many rows carry one and how many
  distinct hashes they have. Equal counts prove the key has no duplicate (a hash collision
  only means "not proven").

A profile is a proof aid, never a verdict: validation reads the rows of every rule it
cannot settle (a limit exceeded, duplicate hashes, no profile at all), so a file without one
is validated exactly, only slower. The footer travels with the file and the snapshot
manifest's sha256 covers it, so the metrics cannot go stale on their own.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

PROFILE_KEY = "recon.profile"
PROFILE_VERSION = 1
MAX_DISTINCT = 1000

Key = tuple[str, ...]


def key_name(key: Sequence[str]) -> str:
    """How a key is named in a profile (and in contract results): its columns joined by ``,``."""
    return ",".join(key)


def key_hashes(key: Sequence[str]) -> pl.Expr:
    """The hashes a key's uniqueness is proven on, here and by the contracts
    (``expectations.contracts.compile_checks``): a single column's non-NULL values, or the
    struct of a key's columns on every row. Unique when ``n_unique() == len()``."""
    if len(key) == 1:
        return pl.col(key[0]).drop_nulls().hash()
    return pl.struct(list(key)).hash()


def _max_bytes(column: pa.ChunkedArray) -> int | None:
    """The longest value of a string column in bytes, None when every value is NULL. Read
    off the offsets buffer (a NULL has an empty slot), one vectorised pass per chunk."""
    best: int | None = None
    for chunk in column.chunks:
        n = len(chunk)
        if n == 0 or chunk.null_count == n:
            continue
        width = np.int64 if pa.types.is_large_string(chunk.type) else np.int32
        offsets = np.frombuffer(chunk.buffers()[1], dtype=width)[chunk.offset:chunk.offset + n + 1]
        m = int(np.diff(offsets).max())
        best = m if best is None else max(best, m)
    return best


class Profiler:
    """Accumulates the profile of the rows written to one file, batch by batch."""

    def __init__(self, schema: pa.Schema, unique: Iterable[Sequence[str]] = (),
                 enums: Iterable[str] = ()) -> None:
        names = set(schema.names)
        self.rows = 0
        self._text = [f.name for f in schema
                      if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
        self._max: dict[str, int | None] = dict.fromkeys(self._text)
        self._distinct: dict[str, set[str] | None] = {
            c: set() for c in dict.fromkeys(enums) if c in self._text}
        self._keys: list[Key] = [tuple(k) for k in unique if k and set(k) <= names]
        self._hashes: dict[Key, list[pl.Series]] = {k: [] for k in self._keys}

    def update(self, table: pa.Table) -> None:
        """Add one batch, exactly as written."""
        if table.num_rows == 0:
            return
        self.rows += table.num_rows
        for c in self._text:
            m = _max_bytes(table.column(c))
            prev = self._max[c]
            if m is not None and (prev is None or m > prev):
                self._max[c] = m
        for c, seen in self._distinct.items():
            if seen is not None:
                seen.update(v for v in pc.unique(table.column(c)).to_pylist() if v is not None)
                if len(seen) > MAX_DISTINCT:
                    self._distinct[c] = None  # too many values to stand for the rows
        if self._keys:
            frame = pl.from_arrow(table.select(sorted({c for k in self._keys for c in k})))
            assert isinstance(frame, pl.DataFrame)
            for k in self._keys:
                self._hashes[k].append(frame.select(key_hashes(k)).to_series())

    def result(self) -> dict[str, Any]:
        """The profile as JSON-able data."""
        unique = {}
        for k in self._keys:
            h = np.concatenate([p.to_numpy() for p in self._hashes[k]]) if self._hashes[k] \
                else np.zeros(0, dtype=np.uint64)
            h.sort()  # in place; equal values now adjoin (twice as fast as a hash set here)
            repeats = int(np.count_nonzero(h[1:] == h[:-1]))
            unique[key_name(k)] = {"count": len(h), "distinct_hashes": len(h) - repeats}
        return {"version": PROFILE_VERSION, "rows": self.rows, "max_bytes": dict(self._max),
                "distinct": {c: None if v is None else sorted(v)
                             for c, v in self._distinct.items()},
                "unique": unique}

    def metadata(self) -> dict[str, str]:
        """The footer key-value metadata holding the profile."""
        return profile_metadata(self.result())


def profile_frame(frame: pl.DataFrame, unique: Iterable[Sequence[str]] = (),
                  enums: Iterable[str] = ()) -> dict[str, Any]:
    """The profile of a whole frame (what :class:`Profiler` gives for the same rows)."""
    table = frame.to_arrow()
    table = table.cast(pa.schema([  # the file's types: polars exports string views
        pa.field(f.name, pa.large_string() if pa.types.is_string_view(f.type) else f.type)
        for f in table.schema]))
    p = Profiler(table.schema, unique, enums)
    p.update(table)
    return p.result()


def read_profile(path: Path | str) -> dict[str, Any] | None:
    """The profile in a Parquet file's footer, or None when there is none (a file written by
    something else), it is of another version, or its row count is not the file's."""
    md = pq.read_metadata(path)
    raw = (md.metadata or {}).get(PROFILE_KEY.encode())
    if raw is None:
        return None
    try:
        prof = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(prof, dict) or prof.get("version") != PROFILE_VERSION \
            or prof.get("rows") != md.num_rows:
        return None
    return prof


def unique_counts(frame: pl.LazyFrame, unique: Iterable[Sequence[str]]
                  ) -> tuple[int, dict[str, dict[str, int]]]:
    """The row count and the ``unique`` part of a profile measured on ``frame``, in one pass
    that reads the key columns only."""
    keys = [tuple(k) for k in unique if k]
    exprs: list[pl.Expr] = [pl.len().alias("rows")]
    for k in keys:
        h = key_hashes(k)
        exprs += [h.len().alias(f"n:{key_name(k)}"), h.n_unique().alias(f"d:{key_name(k)}")]
    row = frame.select(exprs).collect().row(0, named=True)
    return int(row["rows"]), {key_name(k): {"count": int(row[f"n:{key_name(k)}"]),
                                            "distinct_hashes": int(row[f"d:{key_name(k)}"])}
                              for k in keys}


def merged_profile(base: dict[str, Any] | None, delta: dict[str, Any] | None, rows: int,
                   unique: dict[str, dict[str, int]]) -> dict[str, Any] | None:
    """The profile of a file holding a subset of ``base``'s rows plus some of ``delta``'s
    (an incremental merge). Lengths are upper bounds (the larger maximum): sound for proving
    limits, and a limit they cannot prove is checked on the rows. ``unique`` is measured on
    the merged rows by the caller. None when either side has no profile."""
    if base is None or delta is None:
        return None
    lengths: dict[str, int | None] = {}
    for c, b in base["max_bytes"].items():
        if c not in delta["max_bytes"]:
            continue
        known = [m for m in (b, delta["max_bytes"][c]) if m is not None]
        lengths[c] = max(known) if known else None
    values: dict[str, list[str] | None] = {}
    for c, b in base.get("distinct", {}).items():
        d = delta.get("distinct", {}).get(c, None)
        union = None if b is None or d is None else set(b) | set(d)
        values[c] = None if union is None or len(union) > MAX_DISTINCT else sorted(union)
    return {"version": PROFILE_VERSION, "rows": rows, "max_bytes": lengths,
            "distinct": values, "unique": unique}


def profile_metadata(profile: dict[str, Any] | None) -> dict[str, str]:
    """Footer key-value metadata for ``profile`` (nothing when there is none)."""
    return {} if profile is None else {PROFILE_KEY: json.dumps(profile, separators=(",", ":"))}


def zuora_keys(object_name: str) -> list[Key]:
    """Keys profiled in a Zuora object's file: its ``Id``."""
    return [("Id",)]


def zuora_enums(object_name: str) -> list[str]:
    """Columns whose distinct values a Zuora object's file profile keeps: its enum fields."""
    from core.catalog import OBJECTS

    return [f.name for s in OBJECTS if s.name == object_name for f in s.fields if f.enum]


def local_enums(table: str) -> list[str]:
    """Columns whose distinct values a local table's file profile keeps: the local columns
    of enum fields."""
    from core.catalog import OBJECTS

    return [f.column for s in OBJECTS if s.table == table for f in s.fields
            if f.enum and f.column]


def local_keys(table: str) -> list[Key]:
    """Keys profiled in a local table's file: the primary key and the UNIQUE columns (and
    column tuples) the catalogue declares, the same ones the contracts hold unique."""
    from core.catalog import LOCAL_TABLES, OBJECTS

    for spec in OBJECTS:
        if spec.table == table:
            return [(c,) for c in dict.fromkeys((spec.local_pk, *spec.unique_local))]
    for t in LOCAL_TABLES:
        if t.name == table:
            return [(t.pk,)] + [tuple(u) for u in t.unique if tuple(u) != (t.pk,)]
    return []
