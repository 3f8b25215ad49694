"""Normalisation before comparison, as DuckDB SQL generated from the catalogue.

Every compared field of both sides is turned into one canonical text value, so that
representation-only differences (domain.md D26: "" vs NULL, ``Flat Fee`` vs ``FlatFee``,
``Canceled`` vs ``Cancelled``, e-mail case, decimal scale, a tenant-zone offset vs naive UTC)
compare equal and every real difference does not. The same text is what findings show as
"Zuora value" and "local value", so a person sees exactly what was compared.

Both sides are expected as relations in one DuckDB connection: the Zuora side under the Zuora
object names (typed by ``core.values``), the local side under the local table names.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from core.catalog import Field, Norm, ObjectSpec, ZType

Render = Callable[[Field, str, str | None], str]


# The SQL type a Zuora-side column has in a snapshot (core/values.py).
ZUORA_SQL_TYPES = {ZType.ID: "VARCHAR", ZType.STR: "VARCHAR", ZType.DATETIME: "TIMESTAMP",
                   ZType.DATE: "DATE", ZType.DECIMAL: "DECIMAL(38,9)", ZType.INT: "BIGINT",
                   ZType.BOOL: "BOOLEAN"}
_INTEGER_TYPES = ("INTEGER", "BIGINT", "SMALLINT")
_SQUASH = "replace(replace(replace(replace(replace(TRIM({e}), ' ', ''), '_', ''), '-', ''), " \
          "chr(9), ''), chr(10), '')"


def typed(field: Field, expr: str, source: str | None = None) -> str:
    """SQL turning ``expr`` (either side's value of ``field``) into its canonical *typed*
    value: the same DuckDB type on both sides, equal exactly when the two values mean the same
    thing. Hashing and comparing typed values is much cheaper than comparing text, so the diff
    uses these and renders text (:func:`display`) only for the rows that differ.

    ``source`` is the SQL type ``expr`` already has, when known: casts that would not change
    anything are left out (they cost real time on millions of rows). DuckDB's casts to a
    smaller decimal scale or to an integer round half away from zero, which is Zuora's half-up.
    """
    src = (source or "").upper()
    match field.norm:
        case Norm.CUSTOM:
            out = f"NULLIF(TRIM(CAST({expr} AS VARCHAR)), '')"
        case Norm.EMAIL:
            out = f"NULLIF(LOWER(TRIM(CAST({expr} AS VARCHAR))), '')"
        case Norm.ENUM:
            squashed = "LOWER(" + _SQUASH.format(e=f"CAST({expr} AS VARCHAR)") + ")"
            out = f"NULLIF(replace({squashed}, 'canceled', 'cancelled'), '')"
        case Norm.MULTISELECT:
            # a set: order, blanks, empty items and repeated values do not matter
            parts = (f"list_sort(list_distinct(list_filter(list_transform(string_split("
                     f"CAST({expr} AS VARCHAR), ';'), lambda t: LOWER(TRIM(t))), "
                     "lambda t: t <> '')))")
            out = f"NULLIF(array_to_string({parts}, ';'), '')"
        case Norm.DATETIME_UTC:
            out = f"date_trunc('second', CAST({expr} AS TIMESTAMP))"
        case Norm.DATE:
            out = expr if src == "DATE" else f"CAST({expr} AS DATE)"
        case Norm.DECIMAL:
            scale = field.scale if field.scale is not None else 9
            if src == "DECIMAL(38,9)":  # 128-bit arithmetic is slow: 64-bit when it fits
                out = (f"coalesce(CAST(TRY_CAST({expr} AS DECIMAL(18,9)) AS DECIMAL(18,{scale}))"
                       f", CAST({expr} AS DECIMAL(38,{scale})))")
            else:
                inner = expr if src.startswith("DECIMAL") else f"CAST({expr} AS DECIMAL(38,9))"
                out = f"CAST({inner} AS DECIMAL(38,{scale}))"
        case Norm.INTEGER:
            # HUGEINT on both sides: a Zuora decimal may have up to 29 integer digits
            # (DECIMAL(38,9)), beyond BIGINT; such a value must compare unequal to the local
            # one, not stop the diff (it does not fit the local column: a finding for a person).
            if src == "DECIMAL(38,9)":
                out = (f"coalesce(CAST(TRY_CAST({expr} AS DECIMAL(18,9)) AS BIGINT), "
                       f"CAST({expr} AS HUGEINT))")
            else:
                inner = expr if src.startswith("DECIMAL") or src in _INTEGER_TYPES \
                    else f"CAST({expr} AS DECIMAL(38,9))"
                out = f"CAST({inner} AS HUGEINT)"
        case Norm.BOOL:
            out = expr if src == "BOOLEAN" else f"CAST({expr} AS BOOLEAN)"
        case _:
            if field.ztype is ZType.INT:
                out = expr if src == "BIGINT" else f"CAST({expr} AS BIGINT)"
            else:
                out = f"CAST({expr} AS VARCHAR)"
    return out


def aligned(field: Field, expr: str, source: str | None = None) -> str | None:
    """SQL casting ``expr`` to the Zuora side's type of ``field`` *without* normalising it,
    or None when that cast could lose information (a decimal with more than 9 places).

    Why: :func:`typed` is a function of this value on both sides (it casts to the same base
    type first, or the cast is exact), so two rows whose aligned values are equal are equal
    after normalisation too. The diff hashes aligned values, which costs about what a raw
    compare costs (the Zuora side is already in its type: no expression at all), and
    normalises only the rows whose aligned hashes differ: the real differences plus the
    representation-only ones (D26), which normalisation then discards."""
    target = ZUORA_SQL_TYPES[field.ztype]
    src = (source or "").upper().replace(" ", "")
    if src == target or (target == "VARCHAR" and src.startswith("VARCHAR")):
        return expr
    m = re.fullmatch(r"DECIMAL\((\d+),(\d+)\)", src)
    if m and not (int(m[2]) <= 9 and int(m[1]) - int(m[2]) <= 29):
        return None  # DECIMAL(38,9) cannot hold it exactly
    return f"CAST({expr} AS {target})"


def display(field: Field, expr: str) -> str:
    """SQL rendering a :func:`typed` value as the text findings show (and the oracle compares):
    dateTimes as ISO-8601 UTC with a ``Z``, everything else as DuckDB's text of the value."""
    if field.norm is Norm.DATETIME_UTC:
        return f"strftime({expr}, '%Y-%m-%dT%H:%M:%SZ')"
    return f"CAST({expr} AS VARCHAR)"


def canonical(field: Field, expr: str, source: str | None = None) -> str:
    """SQL turning ``expr`` (either side's value of ``field``) into canonical text."""
    return display(field, typed(field, expr, source))


def zuora_side_sql(spec: ObjectSpec, fields: list[Field] | None = None,
                   value: Render = canonical, only_ids: str | None = None,
                   relation: str | None = None) -> str:
    """``key`` + canonical compared fields of the Zuora side, restricted to the rows the local
    copy is meant to hold (``ObjectSpec.zuora_scope``). ``value`` is :func:`canonical` (text)
    or :func:`typed`. ``only_ids``: a query of Ids to keep; the filter sits under the
    normalisation, so only those rows are normalised. ``relation``: where the Zuora rows
    are (default: the object's view)."""
    fields = spec.compared_fields if fields is None else fields
    cols = ['z."Id" AS key'] + [
        f'{value(f, f"z.{ident(f.name)}", ZUORA_SQL_TYPES[f.ztype])} AS {ident(f.name)}'
        for f in fields]
    conds = ([spec.zuora_scope] if spec.zuora_scope else []) + (
        [f'z."Id" IN ({only_ids})'] if only_ids else [])
    where = f" WHERE {' AND '.join(f'({c})' for c in conds)}" if conds else ""
    return f"SELECT {', '.join(cols)} FROM {relation or spec.name} z{where}"


def local_side_sql(spec: ObjectSpec, fields: list[Field] | None = None,
                   value: Render = canonical) -> str:
    """``key`` + canonical compared fields of the local table; REF columns are followed to the
    referenced row's Zuora id so both sides compare Zuora ids."""
    fields = spec.compared_fields if fields is None else fields
    cols, joins = [f"l.{spec.key_column} AS key"], []
    for i, f in enumerate(fields):
        if f.ref is not None:
            alias = f"r{i}"
            joins.append(f"LEFT JOIN {f.ref.table} {alias} ON {alias}.{f.ref.column} = l.{f.column}")
            cols.append(f"{value(f, f'{alias}.{f.ref.key_column}')} AS {ident(f.name)}")
        else:
            cols.append(f"{value(f, f'l.{f.column}', f.local_type)} AS {ident(f.name)}")
    return f"SELECT {', '.join(cols)} FROM {spec.table} l " + " ".join(joins)


def ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'
