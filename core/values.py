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

A value is *valid in Zuora* when it parses as its Zuora type within the snapshot's types:
text is UTF-8 (NUL bytes included: they are kept exactly), integers are whole numbers within
Int64 (``"1.5"`` is not an integer; ``"1.0"`` is), decimals are plain decimal numbers within
DECIMAL(38, 9) (at most 29 integer digits and 9 significant decimal places: nothing is cut),
dates are ``YYYY-MM-DD`` calendar days, dateTimes carry a real instant. Anything else is not
silently nulled or changed: it is returned as a *reject* naming the object, the record key
(or, when the key itself is unreadable, where the record sits in its file), the field, the
raw value (undecodable bytes escaped) and the rule, so the caller can quarantine the record.
Whether a valid value *fits* the local column is another question, answered later (the
diff and the repair), never here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import polars as pl

from core.catalog import Field, ObjectSpec, ZType

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
# What the extractor writes to rejects/: REJECT_SCHEMA and where the record sits in its file
# (older snapshots and hand-made reject frames may lack ``location``; readers allow that).
REJECTS = {**REJECT_SCHEMA, "location": pl.String}
DECIMAL_INT_DIGITS = 29  # DECIMAL(38, 9): 38 - 9 integer digits
DECIMAL_SCALE = 9
UTF8_RULE = "utf8"  # the reject rule of a text value that is not UTF-8
LOCATION = "_location"  # where a record sits in its source file (rejects name it)
# The renderings Zuora uses per API (docs/zuora-api.md §4.1).
DT_FORMATS = {
    "zoql": "%Y-%m-%dT%H:%M:%S%.3f%:z",  # ZOQL query, CRUD, dataset files
    "object_query": "%Y-%m-%dT%H:%M:%S%:z",  # Object Query: no milliseconds
    "aqua": "%Y-%m-%dT%H:%M:%S%:z",  # AQuA CSV (tenant offset; midnight written date-only)
    "aqua_utc": "%Y-%m-%dT%H:%M:%S%z",  # AQuA CSV with dateTimeUtc ("+0000", UNCONFIRMED)
}


def dtype_of(field: Field) -> pl.DataType:
    return DTYPES[field.ztype]


@functools.lru_cache(maxsize=256)
def empty_frame(spec: ObjectSpec) -> pl.DataFrame:
    """No row of ``spec``, typed. Cached by the (frozen) spec: frames are immutable, and a
    targeted sync starts from one per object."""
    return pl.DataFrame(schema={f.name: dtype_of(f) for f in spec.fields})


@dataclass(frozen=True)
class Parsed:
    frame: pl.DataFrame  # typed, one column per catalogue field, in catalogue order
    rejects: pl.DataFrame  # REJECTS: values that did not parse


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


def _decimal_ok(s: pl.Expr) -> pl.Expr:
    """A plain decimal (no exponent, no grouping) that DECIMAL(38, 9) holds exactly: at most
    29 integer digits and at most 9 decimal places once trailing zeros are dropped (a tenth
    decimal place would be cut by the cast, silently)."""
    plain = s.str.contains(r"^[+-]?(\d+\.?\d*|\.\d+)$")
    int_digits = s.str.replace(r"^[+-]?0*", "").str.replace(r"\..*$", "").str.len_chars()
    places = s.str.extract(r"\.(\d*?)0*$", 1).str.len_chars().fill_null(0)
    return plain & (int_digits <= DECIMAL_INT_DIGITS) & (places <= DECIMAL_SCALE)


def parse_expr(field: Field, tenant_tz: str) -> pl.Expr:
    """Expression turning the raw string column ``field.name`` into its typed value."""
    col = pl.col(field.name)
    match field.ztype:
        case ZType.DATETIME:
            out = _parse_datetime(col, tenant_tz)
        case ZType.DATE:
            s = col.str.strip_chars()
            day = s.str.contains(r"^\d{4}-\d{2}-\d{2}(T00:00:00(\.0+)?(Z|[+-]\d{2}:?\d{2})?)?$")
            out = pl.when(day).then(s.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False))
        case ZType.DECIMAL:
            s = col.str.strip_chars()
            out = pl.when(_decimal_ok(s)).then(s.cast(DECIMAL, strict=False))
        case ZType.INT:
            # A whole number only: "1.5" is not an integer (casting would make it 1), and a
            # number beyond Int64 does not fit the snapshot's type (the cast gives null).
            s = col.str.strip_chars()
            whole = s.str.contains(r"^[+-]?\d+(\.0*)?$")
            out = pl.when(whole).then(
                s.str.replace(r"\.0*$", "").cast(pl.Int64, strict=False))
        case ZType.BOOL:
            out = _parse_bool(col)
        case _:
            out = col
    return out.alias(field.name)


def parse_frame(spec: ObjectSpec, raw: pl.DataFrame, tenant_tz: str) -> Parsed:
    """Type a raw (all-string) Zuora frame. Missing columns are NULL (ZOQL omits null fields);
    columns the catalogue does not declare are the caller's concern (contracts check them).
    A ``_location`` column (where each record sits in its file) is copied into the rejects."""
    where = raw[LOCATION] if LOCATION in raw.columns else None
    raw = raw.with_columns(
        [pl.lit(None, pl.String).alias(f.name) for f in spec.fields if f.name not in raw.columns]
    ).select([pl.col(f.name).cast(pl.String) for f in spec.fields])
    typed = raw.select([parse_expr(f, tenant_tz) for f in spec.fields])
    if where is not None:
        raw = raw.with_columns(where)
    checks = [f for f in spec.fields if f.ztype not in (ZType.ID, ZType.STR)]
    rejects = []
    # a value that did not parse: text on the raw side, NULL on the typed side. Which fields
    # have one is decided in one pass (a select per field costs more than the few rows a
    # targeted sync parses); only those fields are looked at again
    both = raw.hstack(typed.select([pl.col(f.name).alias(f"__typed__{f.name}")
                                    for f in checks]))

    def failed(f: Field) -> pl.Expr:
        return (pl.col(f.name).is_not_null() & (pl.col(f.name).str.strip_chars() != "")
                & pl.col(f"__typed__{f.name}").is_null())

    flagged = both.select([failed(f).any().alias(f.name) for f in checks]).row(0) \
        if checks and raw.height else ()
    for f, any_bad in zip(checks, flagged, strict=False):
        if any_bad:
            rows = both.filter(failed(f))
            rejects.append(pl.DataFrame({
                "object": spec.name, "key": rows["Id"], "field": f.name,
                "value": rows[f.name], "rule": f"parse:{f.ztype.value}",
                "location": rows[LOCATION] if LOCATION in rows.columns else None,
            }, schema=REJECTS))
    rej = pl.concat(rejects) if rejects else pl.DataFrame(schema=REJECTS)
    return Parsed(typed, rej)


def escape_bytes(value: bytes) -> str:
    """Raw bytes as text a person can read and nothing can mistake for the value: valid
    UTF-8 as is, every undecodable byte as ``\\xNN`` (NUL bytes as ``\\x00``)."""
    return value.decode("utf-8", "backslashreplace").replace("\0", "\\x00")


@dataclass(frozen=True)
class Decoded:
    frame: pl.DataFrame  # the same columns as text; undecodable values NULL
    rejects: pl.DataFrame  # REJECTS, rule ``utf8``: the raw bytes escaped
    unreadable_key: pl.Series  # Boolean per row: the key itself is not UTF-8


def decode_utf8(spec: ObjectSpec, raw: pl.DataFrame, columns: list[str],
                location: pl.Series) -> Decoded:
    """Binary columns (what an AQuA CSV holds, byte for byte) → text. A value that is not
    UTF-8 is not a Zuora text value: it becomes NULL here and a reject naming the record
    (``location`` says where it sits when its key is what cannot be read). NUL bytes are
    valid text and stay. Set-based: each column is decoded whole; only a column that fails
    is looked at value by value (rare, and only that column of that block)."""
    out: dict[str, pl.Series] = {}
    bad: dict[str, pl.Series] = {}
    for name in columns:
        col = raw[name]
        if col.dtype != pl.Binary:
            out[name] = col.cast(pl.String)
            continue
        try:
            out[name] = col.cast(pl.String)
        except pl.exceptions.PolarsError:
            ok = [v is None or _is_utf8(v) for v in col.to_list()]
            mask = pl.Series(ok, dtype=pl.Boolean)
            text = col.to_frame().select(pl.when(mask).then(pl.col(name))).to_series()
            out[name] = pl.Series(name, [v.decode("utf-8") if v is not None else None
                                        for v in text.to_list()], dtype=pl.String)
            bad[name] = ~mask
    frame = pl.DataFrame(out)
    key_bad = bad.get("Id", pl.Series([False] * raw.height, dtype=pl.Boolean))
    keys = frame["Id"] if "Id" in frame.columns else pl.Series([None] * raw.height, dtype=pl.String)
    parts = []
    for name, mask in bad.items():
        rows = raw.filter(mask)
        parts.append(pl.DataFrame({
            "object": spec.name, "key": keys.filter(mask), "field": name,
            "value": [escape_bytes(v) for v in rows[name].to_list()], "rule": UTF8_RULE,
            "location": location.filter(mask),
        }, schema=REJECTS))
    rej = pl.concat(parts) if parts else pl.DataFrame(schema=REJECTS)
    return Decoded(frame, rej, key_bad)


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


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
            if style == "object_query" and field.object_query_values:
                out = out.replace(field.to_object_query)
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
