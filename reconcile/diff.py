"""Row and field differences per catalogue object, keyed by Zuora Id, hash first.

For each object both sides are normalised to canonical *typed* values (``normalize.typed``)
and hashed per key in one pass; only keys whose hash differs (or that exist on one side) are
looked at again, and only those rows are rendered field by field. With 1% of rows changed
the detail pass touches 1% of the rows, so the cost stays close to a bare hash compare.

A row missing locally or orphaned locally is one finding; a row present on both sides gives
one ``field_mismatch`` per differing field with both values as canonical text (what the
comparison actually saw, so ``10`` vs ``10.000000000`` never shows as a difference).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import duckdb
import polars as pl

from extract.catalog import OBJECTS, Field, Norm, ObjectSpec, ZType
from reconcile.findings import insert, sql_text
from reconcile.normalize import display, local_side_sql, typed, zuora_side_sql

AUDIT_FIELDS = ("CreatedById", "CreatedDate", "UpdatedById", "UpdatedDate")
# Fields whose drift changes what a customer is entitled to or billed: high severity.
HIGH_FIELDS = ("Status", "AccountId", "InvoiceOwnerId", "CancelledDate", "SubscriptionEndDate",
               "TermEndDate", "Quantity", "Price", "BillToId", "SoldToId", "Currency")

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


def _numeric(f: Field) -> bool:
    return f.norm in (Norm.DECIMAL, Norm.INTEGER) or f.ztype in (ZType.INT, ZType.DECIMAL)


def diff_object(con: duckdb.DuckDBPyConnection, spec: ObjectSpec,
                fields: list[Field] | None = None) -> tuple[ObjectStats, pl.DataFrame]:
    """Add the findings of one object to ``findings``; return its statistics and per-field
    statistics. ``fields`` defaults to the catalogue's compared fields."""
    t0 = time.perf_counter()
    fields = spec.compared_fields if fields is None else fields
    zside = zuora_side_sql(spec, fields, typed)
    lside = local_side_sql(spec, fields, typed)
    # One pass per side for the hashes, and the local values of differing rows kept on the
    # way: Zuora's (key, hash) is the (small) build side of the join, computed inline, and the
    # local side streams through it. Only the Zuora side is read a second time, for the few
    # keys that differ (keeping all of its values in the build side costs more than that).
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
    unequal = con.execute(
        "SELECT count(*) FROM _dk WHERE NOT missing AND NOT orphan").fetchall()[0][0]
    field_stats = pl.DataFrame(schema=FIELD_STATS_SCHEMA)
    if unequal and fields:
        differing = "SELECT key FROM _dk WHERE NOT missing AND NOT orphan"
        zcols = ", ".join(f'z."{f.name}" AS "z_{f.name}"' for f in fields)
        lcols = ", ".join(f'd."l_{f.name}"' for f in fields)
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _mm AS
            SELECT z.key, {zcols}, {lcols}
            FROM ({zuora_side_sql(spec, fields, typed, only_ids=differing)}) z
            JOIN _dk d ON d.key = z.key""")
        parts = []
        for f in fields:
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
        con.execute("CREATE OR REPLACE TEMP TABLE _fm AS " + " UNION ALL ".join(parts))
        con.execute(insert(f"""
            SELECT {obj} AS object, key, 'field_mismatch' AS kind, field, zuora_value,
                   local_value,
                   CASE WHEN day_shift IS NOT NULL
                        THEN json_object('day_shift', day_shift) END AS evidence
            FROM _fm"""))
        field_stats = pl.DataFrame(con.execute(f"""
            SELECT {obj} AS object, field, count(*) AS unequal,
                   count(*) FILTER (WHERE null_vs_value) AS null_vs_value,
                   CAST(max(TRY_CAST(delta AS DOUBLE)) AS VARCHAR) AS max_abs_diff
            FROM _fm GROUP BY field ORDER BY field""").fetchall(),
            schema=FIELD_STATS_SCHEMA, orient="row")  # a few rows: no Arrow round trip
    counts = con.execute(f"""
        SELECT (SELECT count(*) FROM ({zside})), (SELECT count(*) FROM local.{spec.table}),
               (SELECT count(*) FILTER (WHERE missing) FROM _dk),
               (SELECT count(*) FILTER (WHERE orphan) FROM _dk)""").fetchall()[0]
    zrows, lrows, only_z, only_l = (int(x) for x in counts)
    stats = ObjectStats(spec.name, spec.table, zrows, lrows, zrows - only_z, only_z, only_l,
                        int(unequal), field_stats.height, round(time.perf_counter() - t0, 3))
    for t in ("_dk", "_mm", "_fm"):
        con.execute(f"DROP TABLE IF EXISTS {t}")
    return stats, field_stats


def diff_all(con: duckdb.DuckDBPyConnection,
             objects: list[ObjectSpec] | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Diff every catalogue object; return (object statistics, field statistics)."""
    stats, fstats = [], []
    for spec in objects if objects is not None else OBJECTS:
        s, f = diff_object(con, spec)
        stats.append(asdict(s))
        fstats.append(f)
    return (pl.DataFrame(stats, schema=OBJECT_STATS_SCHEMA),
            pl.concat(fstats) if fstats else pl.DataFrame(schema=FIELD_STATS_SCHEMA))
