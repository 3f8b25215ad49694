"""SQL building blocks for repair plans: values as JSON, projected Zuora rows, references.

Plan values are JSON (docs/repair.md "Repair plans"): decimals, dates and timestamps travel as strings
so nothing is lost to floating point; booleans and integers stay JSON scalars. A value the
planner cannot know (the local surrogate id of a row an earlier step inserts) is a reference
``{"$ref": {"table", "match", "column"}}`` the executor resolves inside the transaction.
"""

from __future__ import annotations

from core.catalog import Field, ObjectSpec
from core.catalog.project import value_sql
from core.localdb.schema import table_columns


def jv(expr: str, local_type: str | None) -> str:
    """SQL: ``expr`` as a JSON value (JSON null for NULL)."""
    t = (local_type or "").upper()
    if t.startswith(("DECIMAL", "NUMERIC")) or t == "DATE":
        inner = f"to_json(CAST({expr} AS VARCHAR))"
    elif t.startswith("TIMESTAMP"):
        inner = f"to_json(strftime(CAST({expr} AS TIMESTAMP), '%Y-%m-%dT%H:%M:%S.%f'))"
    else:
        inner = f"to_json({expr})"
    return f"coalesce({inner}, 'null'::JSON)"


def ref(table: str, match_column: str, value: str, column: str = "id") -> str:
    """SQL: a ``$ref`` JSON value (JSON null when ``value`` is NULL)."""
    return (f"CASE WHEN {value} IS NULL THEN 'null'::JSON ELSE json_object('$ref', json_object("
            f"'table', '{table}', 'match', json_object('{match_column}', {value}), "
            f"'column', '{column}')) END")


def local_row_json(table: str, alias: str, columns: list[str] | None = None) -> str:
    """SQL: a local row (all columns, or ``columns``) as a JSON object."""
    cols = [c for c in table_columns(table) if columns is None or c.name in columns]
    return "json_object(" + ", ".join(
        f"'{c.name}', {jv(f'{alias}.{c.name}', c.local_type)}" for c in cols) + ")"


def projected(f: Field, src: str = "z") -> str:
    """SQL: the local value a correct sync writes (``core.catalog.project``'s rules: the
    generator and the repair agree by construction)."""
    return value_sql(f, src)


def projected_json(f: Field, src: str = "z") -> str:
    """SQL: ``projected`` as JSON; a REF column becomes a ``$ref`` to the referenced row."""
    if f.ref is not None:
        return ref(f.ref.table, f.ref.key_column, f'{src}."{f.name}"', f.ref.column)
    return jv(projected(f, src), f.local_type)


def insert_json(spec: ObjectSpec, src: str = "z", *, skip_refs: bool = False,
                extra: dict[str, str] | None = None) -> str:
    """SQL: the full new local row for Zuora row ``src`` (stored fields, REF columns as
    references or NULL with ``skip_refs``, plus ``extra`` column → JSON SQL)."""
    parts = []
    for f in spec.stored_fields:
        value = "'null'::JSON" if (skip_refs and f.ref is not None) else projected_json(f, src)
        parts.append(f"'{f.column}', {value}")
    for col, value in (extra or {}).items():
        parts.append(f"'{col}', {value}")
    return "json_object(" + ", ".join(parts) + ")"
