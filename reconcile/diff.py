"""Row and field differences per catalogue object, keyed by Zuora Id, hash first.

Two levels, so that the expensive part runs on few rows:

1. **Hash what is stored.** Each side is hashed per key over its compared fields *aligned*
   (``normalize.aligned``: cast to Zuora's type, not normalised). On the Zuora side that is
   the column itself, so this pass costs what a bare hash compare costs. Equal aligned
   values are equal after normalisation too (a tested property of the catalogue), so a row
   whose hashes match is settled. Fields whose normalisation routinely changes the value
   (:data:`HASH_NORMALISED`) or whose cast could lose information are hashed normalised.
2. **Normalise the candidates.** Keys present on one side only are findings at once. Keys
   whose hashes differ are candidates: their Zuora values are read again (by polars, which
   decodes only the rows its filter keeps, when the view's file is known), both sides are
   normalised (``normalize.typed``) and compared field by field. A candidate equal after
   normalisation was a representation-only difference (D26) and yields nothing.

A row missing locally or orphaned locally is one finding; a row present on both sides gives
one ``field_mismatch`` per differing field with both values as canonical text (what the
comparison actually saw, so ``10`` vs ``10.000000000`` never shows as a difference).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb
import polars as pl

from core.catalog import OBJECTS, Field, Norm, ObjectSpec, ZType
from reconcile.findings import insert, sql_text
from reconcile.normalize import (
    ZUORA_SQL_TYPES,
    aligned,
    display,
    ident,
    local_side_sql,
    typed,
    zuora_side_sql,
)

AUDIT_FIELDS = ("CreatedById", "CreatedDate", "UpdatedById", "UpdatedDate")
# Fields whose drift changes what a customer is entitled to or billed: high severity.
HIGH_FIELDS = ("Status", "AccountId", "InvoiceOwnerId", "CancelledDate", "SubscriptionEndDate",
               "TermEndDate", "Quantity", "Price", "BillToId", "SoldToId", "Currency")

# Fields hashed normalised rather than aligned: their normalisation routinely changes
# Zuora's own value (INTEGER rounds Zuora's decimals to the local integer column: measured,
# 14% of RatePlanCharge rows would become candidates) or the local spelling routinely differs
# (e-mail case, multiselect order). Every other field is hashed as stored.
HASH_NORMALISED = frozenset({Norm.INTEGER, Norm.EMAIL, Norm.MULTISELECT})

OBJECT_STATS_SCHEMA = {
    "object": pl.String, "table": pl.String, "zuora_rows": pl.Int64, "local_rows": pl.Int64,
    "matched": pl.Int64, "only_zuora": pl.Int64, "only_local": pl.Int64, "unequal": pl.Int64,
    "columns_unequal": pl.Int64, "seconds": pl.Float64,
}
FIELD_STATS_SCHEMA = {
    "object": pl.String, "field": pl.String, "unequal": pl.Int64, "null_vs_value": pl.Int64,
    "max_abs_diff": pl.String,
}


@dataclass
class ObjectStats:
    object: str
    table: str
    zuora_rows: int
    local_rows: int
    matched: int
    only_zuora: int
    only_local: int
    unequal: int
    columns_unequal: int
    seconds: float


def _hash_sql(side_sql: str, fields: list[Field]) -> str:
    cols = ", ".join(f'"{f.name}"' for f in fields) or "0"
    return f"SELECT key, hash({cols}) AS h FROM ({side_sql})"


def _local_source(f: Field) -> str | None:
    """The SQL type the local side gives ``f`` (a followed reference: the referenced id)."""
    return None if f.ref is not None else f.local_type


def _numeric(f: Field) -> bool:
    return f.norm in (Norm.DECIMAL, Norm.INTEGER) or f.ztype in (ZType.INT, ZType.DECIMAL)


def diff_object(con: duckdb.DuckDBPyConnection, spec: ObjectSpec,
                fields: list[Field] | None = None,
                zuora_file: Path | None = None) -> tuple[ObjectStats, pl.DataFrame]:
    """Add the findings of one object to ``findings``; return its statistics and per-field
    statistics. ``fields`` defaults to the catalogue's compared fields. ``zuora_file``: the
    Parquet file behind the object's Zuora view, read directly for the candidates' values."""
    t0 = time.perf_counter()
    fields = spec.compared_fields if fields is None else fields
    # Hash what each side holds, cast to a common type but not normalised (``aligned``): on
    # the Zuora side that is the column itself, so the hash pass costs what a raw compare
    # costs. A field whose cast could lose information is hashed normalised on both sides.
    raw = {f.name for f in fields if f.norm not in HASH_NORMALISED
           and aligned(f, "x", _local_source(f)) is not None}

    def zvalue(f: Field, expr: str, source: str | None = None) -> str:
        return expr if f.name in raw else typed(f, expr, source)

    def lvalue(f: Field, expr: str, source: str | None = None) -> str:
        return (aligned(f, expr, source) or expr) if f.name in raw else typed(f, expr, source)

    zside = zuora_side_sql(spec, fields, zvalue)
    lside = local_side_sql(spec, fields, lvalue)
    # One pass per side for the hashes, and the local values of the candidate rows kept on
    # the way: Zuora's (key, hash) is the (small) build side of the join, computed inline,
    # and the local side streams through it. Only the Zuora side is read a second time, for
    # the few candidate keys (keeping all of its values in the build side costs more).
    names = ", ".join(f'"{f.name}"' for f in fields) or "0"
    lvals = "".join(f', l."{f.name}" AS "l_{f.name}"' for f in fields)
    con.execute("SET disabled_optimizers = 'build_side_probe_side'")
    try:
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _dk AS
            SELECT coalesce(z.key, l.key) AS key, z.key IS NULL AS orphan,
                   l.key IS NULL AS missing{lvals}
            FROM (SELECT *, hash({names}) AS h FROM ({lside})) l
            FULL JOIN ({_hash_sql(zside, fields)}) z ON z.key = l.key
            WHERE z.h IS DISTINCT FROM l.h""")
    finally:
        con.execute("RESET disabled_optimizers")
    obj = sql_text(spec.name)
    con.execute(insert(f"""
        SELECT {obj} AS object, key,
               CASE WHEN missing THEN 'missing_in_local' ELSE 'orphaned_in_local' END AS kind
        FROM _dk WHERE missing OR orphan"""))
    candidates = con.execute(
        "SELECT count(*) FROM _dk WHERE NOT missing AND NOT orphan").fetchall()[0][0]
    field_stats = pl.DataFrame(schema=FIELD_STATS_SCHEMA)
    unequal = 0
    parts: list[str] = []
    if candidates and fields:
        # Normalise the candidates only: Zuora's values read again for those keys, the
        # local ones from what the hash pass kept. Rows equal after normalisation were
        # representation-only differences (D26) and produce nothing.
        differing = "SELECT key FROM _dk WHERE NOT missing AND NOT orphan"
        zuora = (zuora_side_sql(spec, fields, typed, relation=_fetch(con, zuora_file, differing))
                 if zuora_file is not None else
                 zuora_side_sql(spec, fields, typed, only_ids=differing))
        zcols = ", ".join(f'z."{f.name}" AS "z_{f.name}"' for f in fields)
        lcols = ", ".join(
            (typed(f, "d." + ident("l_" + f.name), ZUORA_SQL_TYPES[f.ztype]) if f.name in raw
             else "d." + ident("l_" + f.name)) + " AS " + ident("l_" + f.name) for f in fields)
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _mm AS
            SELECT z.key, {zcols}, {lcols}
            FROM ({zuora}) z JOIN _dk d ON d.key = z.key""")
        if zuora_file is not None:
            con.unregister("_zraw")
        # the fields that differ in at least one candidate row: one arm each below (binding
        # an arm per field of a wide object costs more than comparing a few rows)
        flags = ", ".join(f"""CASE WHEN "z_{f.name}" IS DISTINCT FROM "l_{f.name}" """
                          f"THEN {sql_text(f.name)} END" for f in fields)
        differ = {r[0] for r in con.execute(
            f"SELECT DISTINCT unnest(list_filter([{flags}], lambda x: x IS NOT NULL)) FROM _mm"
        ).fetchall()}
        for f in (f for f in fields if f.name in differ):
            zc, lc = f'"z_{f.name}"', f'"l_{f.name}"'
            delta = (f"CAST(abs(CAST({zc} AS DOUBLE) - CAST({lc} AS DOUBLE)) AS VARCHAR)"
                     if _numeric(f) else
                     f"CAST(abs(datediff('day', {zc}, {lc})) AS VARCHAR)"
                     if f.norm is Norm.DATE else "NULL")
            parts.append(f"""
                SELECT key, {sql_text(f.name)} AS field, {display(f, zc)} AS zuora_value,
                       {display(f, lc)} AS local_value,
                       ({zc} IS NULL) <> ({lc} IS NULL) AS null_vs_value,
                       {delta} AS delta,
                       {"datediff('day', " + zc + ", " + lc + ")" if f.norm is Norm.DATE
                        else "NULL"} AS day_shift
                FROM _mm WHERE {zc} IS DISTINCT FROM {lc}""")
    if parts:  # (none: every candidate was equal after normalisation, D26)
        con.execute("CREATE OR REPLACE TEMP TABLE _fm AS " + " UNION ALL ".join(parts))
        con.execute(insert(f"""
            SELECT {obj} AS object, key, 'field_mismatch' AS kind, field, zuora_value,
                   local_value,
                   CASE WHEN day_shift IS NOT NULL
                        THEN json_object('day_shift', day_shift) END AS evidence
            FROM _fm"""))
        rows = con.execute(f"""
            SELECT {obj} AS object, field, count(*) AS unequal,
                   count(*) FILTER (WHERE null_vs_value) AS null_vs_value,
                   CAST(max(TRY_CAST(delta AS DOUBLE)) AS VARCHAR) AS max_abs_diff
            FROM _fm GROUP BY field ORDER BY field""").fetchall()
        # a few rows: no Arrow round trip
        field_stats = pl.DataFrame(rows, schema=FIELD_STATS_SCHEMA, orient="row")
        unequal = con.execute("SELECT count(DISTINCT key) FROM _fm").fetchall()[0][0]
    counts = con.execute(f"""
        SELECT (SELECT count(*) FROM ({zuora_side_sql(spec, [])})),
               (SELECT count(*) FROM local.{spec.table}),
               (SELECT count(*) FILTER (WHERE missing) FROM _dk),
               (SELECT count(*) FILTER (WHERE orphan) FROM _dk)""").fetchall()[0]
    zrows, lrows, only_z, only_l = (int(x) for x in counts)
    stats = ObjectStats(spec.name, spec.table, zrows, lrows, zrows - only_z, only_z, only_l,
                        int(unequal), field_stats.height, round(time.perf_counter() - t0, 3))
    for t in ("_dk", "_mm", "_fm"):
        con.execute(f"DROP TABLE IF EXISTS {t}")
    return stats, field_stats


def _fetch(con: duckdb.DuckDBPyConnection, path: Path, keys_sql: str) -> str:
    """Register the rows of the Zuora file ``path`` whose Id ``keys_sql`` returns as the
    relation ``_zraw`` (scanned once) and return its name. polars' Parquet reader decodes
    the other columns only for the rows its filter keeps, which makes this read of 1%
    random rows about half the cost of DuckDB's, which decodes every row of every column;
    the rows reach DuckDB through the Arrow C stream interface."""
    keys = pl.Series([r[0] for r in con.execute(keys_sql).fetchall()], dtype=pl.String)
    frame = pl.scan_parquet(path).filter(pl.col("Id").is_in(keys.implode())).collect()
    con.register("_zraw", frame.__arrow_c_stream__())
    return "_zraw"


def diff_all(con: duckdb.DuckDBPyConnection, objects: list[ObjectSpec] | None = None,
             zuora_files: Mapping[str, Path] | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Diff every catalogue object; return (object statistics, field statistics).
    ``zuora_files``: the Parquet file behind each Zuora view, by object name."""
    stats, fstats = [], []
    for spec in objects if objects is not None else OBJECTS:
        s, f = diff_object(con, spec, zuora_file=(zuora_files or {}).get(spec.name))
        stats.append(asdict(s))
        fstats.append(f)
    return (pl.DataFrame(stats, schema=OBJECT_STATS_SCHEMA),
            pl.concat(fstats) if fstats else pl.DataFrame(schema=FIELD_STATS_SCHEMA))
