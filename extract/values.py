"""Zuora values ⇄ typed frames.

Zuora speaks strings: dateTimes with the tenant-zone offset (``2021-07-15T08:42:54.000-07:00``),
sometimes date-only at midnight in AQuA CSVs, sometimes without an offset; dates as
``YYYY-MM-DD``; decimals as numbers or strings; booleans as ``true``/``false``. recon turns
them, once, at the extract boundary, into typed polars columns:

=========  ===================================================
dt         ``Datetime("us")``, naive, **UTC** (the local copy's convention)
d          ``Date`` (a calendar day; never shifted)
dec        ``Decimal(38, 9)`` (exact; rounding happens only at comparison/projection)
int        ``Int64``
bool       ``Boolean``
id / str   ``String``
=========  ===================================================

A value that does not parse is not silently nulled: it is returned as a *reject* naming the
object, the record key, the field, the value and the rule, so the caller can quarantine it.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from extract.catalog import Field, ObjectSpec, ZType

DECIMAL = pl.Decimal(38, 9)
DTYPES: dict[ZType, pl.DataType] = {
    ZType.ID: pl.String(),
    ZType.STR: pl.String(),
    ZType.DATETIME: pl.Datetime("us"),
    ZType.DATE: pl.Date(),
    ZType.DECIMAL: DECIMAL,
    ZType.INT: pl.Int64(),
    ZType.BOOL: pl.Boolean(),
}
REJECT_SCHEMA = {
    "object": pl.String, "key": pl.String, "field": pl.String, "value": pl.String,
    "rule": pl.String,
}
# The renderings Zuora uses per API (docs/zuora-api.md §4.1).
DT_FORMATS = {
    "zoql": "%Y-%m-%dT%H:%M:%S%.3f%:z",  # ZOQL query, CRUD, dataset files
    "object_query": "%Y-%m-%dT%H:%M:%S%:z",  # Object Query: no milliseconds
    "aqua": "%Y-%m-%dT%H:%M:%S%:z",  # AQuA CSV (tenant offset; midnight written date-only)
    "aqua_utc": "%Y-%m-%dT%H:%M:%S%z",  # AQuA CSV with dateTimeUtc ("+0000", UNCONFIRMED)
}


def dtype_of(field: Field) -> pl.DataType:
    return DTYPES[field.ztype]


def empty_frame(spec: ObjectSpec) -> pl.DataFrame:
    return pl.DataFrame(schema={f.name: dtype_of(f) for f in spec.fields})


@dataclass(frozen=True)
class Parsed:
    frame: pl.DataFrame  # typed, one column per catalogue field, in catalogue order
    rejects: pl.DataFrame  # REJECT_SCHEMA: values that did not parse


def _parse_datetime(col: pl.Expr, tenant_tz: str) -> pl.Expr:
    """Offset-bearing strings are converted exactly; date-only strings are midnight in the
    tenant zone (AQuA writes midnight that way); offset-less strings are tenant-zone wall
    time (Zuora's documented behaviour for offset-less literals and values)."""
    s = col.str.strip_chars()
    with_offset = s.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%#z", time_zone="UTC", strict=False)
    naive = s.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", strict=False)
    day = s.str.to_date("%Y-%m-%d", strict=False).cast(pl.Datetime("us"))
    local = pl.coalesce(naive, day).dt.replace_time_zone(
        tenant_tz, ambiguous="earliest", non_existent="null"
    )
    return (
        pl.coalesce(with_offset, local.dt.convert_time_zone("UTC"))
        .dt.replace_time_zone(None)
        .cast(pl.Datetime("us"))
    )


def _parse_bool(col: pl.Expr) -> pl.Expr:
    s = col.str.strip_chars().str.to_lowercase()
    return (
        pl.when(s.is_in(["true", "1", "yes"])).then(True)
        .when(s.is_in(["false", "0", "no"])).then(False)
        .otherwise(None)
    )


def parse_expr(field: Field, tenant_tz: str) -> pl.Expr:
    """Expression turning the raw string column ``field.name`` into its typed value."""
    col = pl.col(field.name)
    match field.ztype:
        case ZType.DATETIME:
            out = _parse_datetime(col, tenant_tz)
        case ZType.DATE:
            out = col.str.strip_chars().str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
        case ZType.DECIMAL:
            out = col.str.strip_chars().cast(DECIMAL, strict=False)
        case ZType.INT:
            out = col.str.strip_chars().cast(DECIMAL, strict=False).cast(pl.Int64, strict=False)
        case ZType.BOOL:
            out = _parse_bool(col)
        case _:
            out = col
    return out.alias(field.name)


def parse_frame(spec: ObjectSpec, raw: pl.DataFrame, tenant_tz: str) -> Parsed:
    """Type a raw (all-string) Zuora frame. Missing columns are NULL (ZOQL omits null fields);
    columns the catalogue does not declare are the caller's concern (contracts check them)."""
    raw = raw.with_columns(
        [pl.lit(None, pl.String).alias(f.name) for f in spec.fields if f.name not in raw.columns]
    ).select([pl.col(f.name).cast(pl.String) for f in spec.fields])
    typed = raw.select([parse_expr(f, tenant_tz) for f in spec.fields])
    checks = [f for f in spec.fields if f.ztype not in (ZType.ID, ZType.STR)]
    rejects = []
    for f in checks:
        bad = raw[f.name].is_not_null() & (raw[f.name].str.strip_chars() != "") & typed[
            f.name].is_null()
        if bad.any():
            rows = raw.filter(bad)
            rejects.append(pl.DataFrame({
                "object": spec.name, "key": rows["Id"], "field": f.name,
                "value": rows[f.name], "rule": f"parse:{f.ztype.value}",
            }, schema=REJECT_SCHEMA))
    rej = pl.concat(rejects) if rejects else pl.DataFrame(schema=REJECT_SCHEMA)
    return Parsed(typed, rej)


def render_expr(field: Field, tenant_tz: str, style: str = "zoql") -> pl.Expr:
    """Expression rendering a typed column as Zuora would send it (strings for dt/d/dec)."""
    col = pl.col(field.name)
    match field.ztype:
        case ZType.DATETIME:
            utc = col.dt.replace_time_zone("UTC")
            if style == "aqua_utc":
                out = utc.dt.strftime(DT_FORMATS[style])
            else:
                local = utc.dt.convert_time_zone(tenant_tz)
                out = local.dt.strftime(DT_FORMATS[style])
                if style == "aqua":  # AQuA writes a value at exact tenant midnight date-only
                    out = (pl.when(local.dt.time() == pl.time(0))
                           .then(local.dt.strftime("%Y-%m-%d")).otherwise(out))
        case ZType.DATE:
            out = col.dt.strftime("%Y-%m-%d")
        case ZType.DECIMAL:
            out = _decimal_text(col)
        case _:
            out = col
    return out.alias(field.name)


def _decimal_text(col: pl.Expr) -> pl.Expr:
    """``12.500000000`` → ``12.5``; ``10.000000000`` → ``10``: how Zuora's JSON shows them."""
    s = col.cast(pl.String)
    trimmed = s.str.replace(r"(\.\d*?)0+$", "$1").str.replace(r"\.$", "")
    return pl.when(col.is_null()).then(None).otherwise(trimmed)


def render_frame(spec: ObjectSpec, typed: pl.DataFrame, tenant_tz: str,
                 style: str = "zoql") -> pl.DataFrame:
    return typed.select([render_expr(f, tenant_tz, style) for f in spec.fields
                         if f.name in typed.columns])
