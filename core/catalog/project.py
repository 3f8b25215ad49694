"""Project typed Zuora rows onto their local table: what a *correct* sync writes.

Used by the generator (to build the clean local copy) and by the repair planner (to compute
the "after" values of an upsert), so both agree by construction. Rules, all read from the
catalogue:

* decimals are rounded half-up (Zuora's default rounding, domain.md §1.9) to the local
  column's scale; integer columns holding Zuora decimals (mrr, quantity, …) round to 0 places;
* a Zuora value that does not fit its local column (``Field.misfit_sql``: longer than the
  VARCHAR, a NUL byte, more integer digits than the DECIMAL, outside the integer type) is
  never cut or wrapped: the projected value is NULL, and the reconciler reports the column to
  a person (the planner leaves it alone on an update and writes NULL on an insert only where
  the column allows it);
* REF columns store the *local* surrogate id of the referenced row (seed 001), looked up in
  the referenced local table by its Zuora id;
* local-only columns are left to the caller (surrogate ids, created_at/updated_at stamps).
"""

from __future__ import annotations

import duckdb
import polars as pl

from core.catalog.model import Field, ObjectSpec, ZType


def value_sql(f: Field, src: str) -> str:
    """SQL: the local value a correct sync writes for Zuora field ``f`` of row ``src``."""
    col = f'{src}."{f.name}"'
    if f.ztype is ZType.DECIMAL and f.scale is not None:
        value = f"TRY_CAST(ROUND({col}, {f.scale}) AS {f.local_type})"
    else:
        value = f"CAST({col} AS {f.local_type})" if f.local_type else col
    misfit = f.misfit_sql(col)
    return value if misfit is None else f"CASE WHEN ({misfit}) IS NULL THEN {value} END"


def local_select_sql(spec: ObjectSpec, src: str = "z",
                     passthrough: tuple[str, ...] = ()) -> tuple[str, list[str]]:
    """SELECT list and JOINs that turn relation ``src`` (typed Zuora rows) into local rows;
    ``passthrough`` columns of ``src`` are carried along unchanged.

    Returns (sql, ref_tables): the caller must expose each referenced local table under its
    own name (a view or a registered frame)."""
    cols = [f"{src}.{c}" for c in passthrough]
    joins, refs = [], []
    for i, f in enumerate(spec.stored_fields):
        if f.ref is not None:
            alias = f"r{i}"
            joins.append(
                f'LEFT JOIN {f.ref.table} {alias} ON {alias}.{f.ref.key_column} = {src}."{f.name}"'
            )
            cols.append(f"{alias}.{f.ref.column} AS {f.column}")
            refs.append(f.ref.table)
        else:
            cols.append(f"{value_sql(f, src)} AS {f.column}")
    sql = f"SELECT {', '.join(cols)} FROM {spec.name} {src} " + " ".join(joins)
    return sql, refs


def to_local(spec: ObjectSpec, typed: pl.DataFrame,
             refs: dict[str, pl.DataFrame] | None = None) -> pl.DataFrame:
    """Local rows for ``typed`` (same order), without the local-only columns."""
    sql, needed = local_select_sql(spec, passthrough=("_pos",))
    con = duckdb.connect()
    try:
        con.register(spec.name, typed.with_row_index("_pos").to_arrow())
        for table in set(needed):
            if refs is None or table not in refs:
                raise ValueError(f"{spec.name} needs local table {table} to resolve references")
            con.register(table, refs[table].to_arrow())
        # joins may reorder rows: restore the input order
        return con.sql(f"SELECT * EXCLUDE (_pos) FROM ({sql}) ORDER BY _pos").pl()
    finally:
        con.close()
