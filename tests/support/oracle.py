"""An independent, deliberately simple comparison used by the tests as ground truth about a
generated world: which catalogue rows differ between the Zuora side and the local side after
normalisation.

It shares nothing with the reconciler but the catalogue's *declarations* (which objects and
fields are compared, each field's normalisation kind, local column, local type and reference,
and which Zuora rows the local copy holds): the normalisation rules themselves are written here
again, per kind, from domain.md (§1.9, §3 "Normalise before comparing", D26), in plain polars
and Python ``Decimal`` so that they are obviously right rather than fast. Were it to import
``reconcile.normalize`` it would only show that the generator agrees with the normaliser.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal

import duckdb
import polars as pl

from core.catalog import OBJECTS, Field, Norm, ObjectSpec, ZType

DIFF_SCHEMA = {"object": pl.String, "key": pl.String, "field": pl.String, "kind": pl.String,
               "zuora_value": pl.String, "local_value": pl.String}
_DECIMAL_TYPE = re.compile(r"DECIMAL\((\d+),\s*(\d+)\)")


def _blank_is_null(s: pl.Series) -> pl.Series:
    return pl.select(pl.when(s != "").then(s)).to_series().alias(s.name)


def _local_scale(f: Field) -> int:
    """Decimal places the local column keeps: DECIMAL(p,s) → s, an integer column → 0."""
    m = _DECIMAL_TYPE.fullmatch(f.local_type or "")
    if m:
        return int(m.group(2))
    if (f.local_type or "").upper() in ("INTEGER", "BIGINT", "SMALLINT"):
        return 0
    return 9  # no local scale declared: Zuora's own (decimals are typed DECIMAL(38, 9))


def _half_up(s: pl.Series, scale: int) -> pl.Series:
    """domain.md §1.9/D06: round half-up (ties away from zero) to ``scale`` places, with
    Python's ``Decimal`` on each distinct value's exact text."""
    text = s.cast(pl.String)
    step = Decimal(1).scaleb(-scale)
    rounded = {v: str(Decimal(v).quantize(step, rounding=ROUND_HALF_UP) + 0)  # + 0: no "-0"
               for v in text.drop_nulls().unique().to_list()}
    return text.replace_strict(rounded, default=None, return_dtype=pl.String)


def _multiselect(value: str | None) -> str | None:
    """seed 004: a multiselect is a set of members: order, blanks and repeats do not matter."""
    if value is None:
        return None
    members = sorted({m.strip().lower() for m in value.split(";")} - {""})
    return ";".join(members) or None


def canonical(f: Field, values: pl.Series) -> pl.Series:
    """One side's values of ``f`` as canonical text (NULL stays NULL)."""
    if values.dtype == pl.Null:
        values = values.cast(pl.String)
    match f.norm:
        case Norm.CUSTOM:  # domain.md §4.4: trimmed, "" is NULL
            out = _blank_is_null(values.cast(pl.String).str.strip_chars())
            cut = getattr(f, "truncate", None)
            if cut:
                out = out.str.slice(0, cut)
        case Norm.EMAIL:  # D19/D26: case and surrounding blanks do not matter
            out = _blank_is_null(values.cast(pl.String).str.strip_chars().str.to_lowercase())
        case Norm.ENUM:  # D26: "Flat Fee"/"FlatFee", "One-Time"/"OneTime", Canceled/Cancelled
            squashed = values.cast(pl.String).str.to_lowercase().str.replace_all(r"[^a-z0-9]", "")
            out = _blank_is_null(squashed.str.replace_all("canceled", "cancelled"))
        case Norm.MULTISELECT:
            out = values.cast(pl.String).map_elements(_multiselect, return_dtype=pl.String,
                                                      skip_nulls=False)
        case Norm.DATETIME_UTC:  # both sides hold naive UTC instants: compare to the second
            out = values.cast(pl.Datetime("us")).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        case Norm.DATE:
            out = values.cast(pl.Date).dt.strftime("%Y-%m-%d")
        case Norm.DECIMAL:
            out = _half_up(values, _local_scale(f))
        case Norm.INTEGER:  # a Zuora decimal in a local integer column
            out = _half_up(values, 0)
        case Norm.BOOL:
            out = values.cast(pl.Boolean).cast(pl.String)
        case _:  # exact: ids, codes, names, integers
            if f.ztype is ZType.INT:
                values = values.cast(pl.Int64)
            out = values.cast(pl.String)
            cut = getattr(f, "truncate", None)
            if cut:
                out = out.str.slice(0, cut)
    return out.alias(f.name)


def _zuora_rows(spec: ObjectSpec, zuora: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """The Zuora rows the local copy is meant to hold (the catalogue's declared scope)."""
    frame = zuora[spec.name]
    if not spec.zuora_scope:
        return frame
    con = duckdb.connect()
    try:
        for name, df in zuora.items():
            con.register(name, df.to_arrow())
        keep = con.sql(f"SELECT Id FROM {spec.name} WHERE {spec.zuora_scope}").pl()["Id"]
    finally:
        con.close()
    return frame.filter(pl.col("Id").is_in(keep.implode()))


def _local_values(f: Field, table: pl.DataFrame, local: dict[str, pl.DataFrame]) -> pl.Series:
    """The local column of ``f``; a reference is followed to the referenced row's Zuora id."""
    if f.ref is None:
        return table[f.column]
    ref = local[f.ref.table].select(pl.col(f.ref.column).alias("__ref"),
                                    pl.col(f.ref.key_column).alias("__zid"))
    ref = ref.unique("__ref", keep="first")
    joined = table.select(pl.col(f.column).alias("__ref")).join(
        ref, on="__ref", how="left", maintain_order="left")
    return joined["__zid"]


def _side(keys: pl.Series, values: dict[str, pl.Series], fields: list[Field]) -> pl.DataFrame:
    return pl.DataFrame([keys.cast(pl.String).alias("key")]
                        + [canonical(f, values[f.name]) for f in fields])


def diff(zuora: dict[str, pl.DataFrame], local: dict[str, pl.DataFrame]) -> pl.DataFrame:
    out = []
    for spec in OBJECTS:
        if spec.name not in zuora or spec.table not in local:
            continue
        fields = spec.compared_fields
        zrows, table = _zuora_rows(spec, zuora), local[spec.table]
        z = _side(zrows["Id"], {f.name: zrows[f.name] for f in fields}, fields)
        lo = _side(table[spec.key_column],
                   {f.name: _local_values(f, table, local) for f in fields}, fields)
        for only, other, kind in ((z, lo, "missing_in_local"), (lo, z, "orphaned_in_local")):
            keys = only.filter(~pl.col("key").is_in(other["key"].implode()))["key"].unique()
            if keys.len():
                out.append(pl.DataFrame({"object": spec.name, "key": keys.sort(), "field": None,
                                         "kind": kind, "zuora_value": None,
                                         "local_value": None}, schema=DIFF_SCHEMA))
        both = z.join(lo, on="key", suffix="__local")
        for f in fields:
            bad = both.filter(pl.col(f.name).ne_missing(pl.col(f"{f.name}__local")))
            if bad.height:
                out.append(bad.select(
                    object=pl.lit(spec.name), key="key", field=pl.lit(f.name),
                    kind=pl.lit("field_mismatch"), zuora_value=f.name,
                    local_value=f"{f.name}__local"))
    return pl.concat(out) if out else pl.DataFrame(schema=DIFF_SCHEMA)
