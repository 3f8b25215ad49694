"""Contracts on what was extracted: one pandera ``DataFrameModel`` per Zuora object and per
local table, generated from the catalogue, and a fast way to run them on millions of rows.

**What a contract declares** (all read from ``core.catalog``; nothing restates a column):

* every column with its type: Zuora side as ``core.values`` types it (``Datetime("us")``,
  ``Decimal(38, 9)``, …), local side as the local export writes it (``VARCHAR`` → String,
  ``INTEGER`` → Int32, ``DECIMAL(18,2)`` → Decimal(18, 2), …); ``strict``: no other column;
* NULL rules: Zuora side, fields Zuora always fills or the local copy cannot store NULL in;
  local side, the column's ``NOT NULL``;
* string lengths: the seed schema's ``VARCHAR(n)`` on the local side and for Zuora ids; a
  Zuora string longer than its local column is valid in Zuora and becomes a finding for a
  person (``Field.misfit_sql``), not a contract failure;
* enums: Zuora side exactly ``Field.enum`` (custom fields may also be ``""``, which means
  NULL; multiselect fields are ``;``-separated members); local side, any spelling that
  normalises to a member the way ``reconcile.normalize`` compares (``PendingActivation``,
  ``One-Time``, ``Cancelled`` for an account are D26 variants, not errors);
* key uniqueness: Zuora ``Id``; the local primary key and ``UNIQUE`` columns.

**How it runs.** pandera checks the *shape* (missing or extra column, wrong type) on a
zero-row ``pl.DataFrame`` carrying the extract's schema: that is all of pandera's schema
validation at no data cost. The row-level checks of the same model are then compiled into
polars expressions (:func:`compile_checks` reads ``Model.to_schema()``) and evaluated in one
parallel pass per frame, because pandera's own row checks cost seconds per million rows
(``bench/validate_bench.py`` measures both; ``engine="pandera"`` in :func:`row_failures` runs
pandera itself, and a test asserts both engines find exactly the same failures). Before any
row is read, the rules the file's footer already proves are set aside: NOT NULL from Parquet
statistics, lengths, enum values and key uniqueness from the extractor's column profile
(:func:`settled_by_profile`, ``core.profile``); a rule they cannot prove runs on the rows.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, replace
from typing import Any

import pandera.polars as pa
import polars as pl
import pyarrow
from pandera import extensions
from pandera.engines import polars_engine as pe

from core.catalog import LOCAL_TABLES, OBJECTS, Field, LocalTable, Norm, ObjectSpec, ZType
from core.localdb import schema as local_schema
from core.profile import key_hashes
from core.values import dtype_of
from expectations.quarantine import QUARANTINE_SCHEMA, empty_quarantine
from expectations.results import CheckResult, pct
from extract.local_export import arrow_type

ZUORA, LOCAL = "zuora", "local"
SAMPLE = 5


# ---------------------------------------------------------------------------------------------
# The check vocabulary. Each check is ONE polars expression builder, used both by the pandera
# check registered under that name and by the compiled fast path, so the two cannot drift.
# A builder returns True where a non-NULL value is acceptable (NULLs are the not_null rule's).
# ---------------------------------------------------------------------------------------------
def squash_enum(expr: pl.Expr) -> pl.Expr:
    """Norm.ENUM's comparison key (``reconcile.normalize.typed``): trimmed, whitespace, ``_``
    and ``-`` removed, lower-cased, ``canceled`` = ``cancelled``."""
    return (expr.str.strip_chars().str.replace_all(r"[\s_-]+", "").str.to_lowercase()
            .str.replace("canceled", "cancelled", literal=True))


def squash_text(value: str) -> str:
    """:func:`squash_enum` for one Python string (the allowed values)."""
    return pl.select(squash_enum(pl.lit(value))).item()


def _enum_normalised(col: pl.Expr, allowed: list[str]) -> pl.Expr:
    key = squash_enum(col)
    return key.is_in(sorted({squash_text(a) for a in allowed} | {""}))


def _custom_isin(col: pl.Expr, allowed: list[str]) -> pl.Expr:
    """Custom fields: ``""`` means NULL (Norm.CUSTOM), surrounding blanks do not count."""
    return col.str.strip_chars().is_in([*allowed, ""])


def _multiselect_isin(col: pl.Expr, allowed: list[str], case_insensitive: bool) -> pl.Expr:
    """Every ``;``-separated member (trimmed, blanks ignored) is an allowed value."""
    members = col.str.split(";").list.eval(pl.element().str.strip_chars())
    if case_insensitive:
        members = members.list.eval(pl.element().str.to_lowercase())
        allowed = [a.lower() for a in allowed]
    ok = members.list.eval((pl.element() == "") | pl.element().is_in(allowed))
    return ok.list.all()


def _isin(col: pl.Expr, allowed_values: Iterable[Any]) -> pl.Expr:
    return col.is_in(list(allowed_values))


def _str_length(col: pl.Expr, min_value: int | None = None, max_value: int | None = None,
                exact_value: int | None = None) -> pl.Expr:
    n = col.str.len_chars()  # characters, as VARCHAR(n) counts them (PostgreSQL)
    if exact_value is not None:
        return n == exact_value
    ok = pl.lit(True)
    if min_value is not None:
        ok = ok & (n >= min_value)
    if max_value is not None:
        ok = ok & (n <= max_value)
    return ok


# pandera check name -> (rule name recorded in results/quarantine, expression builder)
CHECKS: dict[str, tuple[str, Callable[..., pl.Expr]]] = {
    "isin": ("enum", _isin),
    "str_length": ("max_length", _str_length),
    "enum_normalised": ("enum", _enum_normalised),
    "custom_isin": ("enum", _custom_isin),
    "multiselect_isin": ("enum", _multiselect_isin),
}


def _register(fn: Callable[..., pl.LazyFrame], statistics: list[str]) -> None:
    """Register a recon check with pandera, once per process (pandera keeps a global
    registry; a second registration of the same name raises)."""
    if not hasattr(pa.Check, fn.__name__):
        extensions.register_check_method(statistics=statistics)(fn)


# pandera reads the statistics from each function's signature, hence three small wrappers.
def enum_normalised(data: Any, *, allowed: list[str]) -> pl.LazyFrame:
    return data.lazyframe.select(_enum_normalised(pl.col(data.key), allowed))


def custom_isin(data: Any, *, allowed: list[str]) -> pl.LazyFrame:
    return data.lazyframe.select(_custom_isin(pl.col(data.key), allowed))


def multiselect_isin(data: Any, *, allowed: list[str], case_insensitive: bool) -> pl.LazyFrame:
    return data.lazyframe.select(
        _multiselect_isin(pl.col(data.key), allowed, case_insensitive))


_register(enum_normalised, ["allowed"])
_register(custom_isin, ["allowed"])
_register(multiselect_isin, ["allowed", "case_insensitive"])


# ---------------------------------------------------------------------------------------------
# Model generation from the catalogue
# ---------------------------------------------------------------------------------------------
def local_dtype(local_type: str) -> pl.DataType:
    """The polars type a local column has in a snapshot (via the local export's Arrow type)."""
    return pl.from_arrow(pyarrow.array([], type=arrow_type(local_type))).dtype  # type: ignore[union-attr]


@dataclass(frozen=True)
class ColumnSpec:
    """One declared column before it becomes a pandera field."""

    name: str
    dtype: pl.DataType
    nullable: bool
    unique: bool = False
    checks: tuple[tuple[str, dict[str, Any]], ...] = ()
    description: str = ""


def _annotation(dtype: pl.DataType) -> tuple[Any, dict[str, Any]]:
    """A pandera annotation (+ ``dtype_kwargs``) for a parametrised polars type."""
    if isinstance(dtype, pl.Decimal):
        return pe.Decimal, {"precision": dtype.precision, "scale": dtype.scale}
    if isinstance(dtype, pl.Datetime):
        return pe.DateTime, {"time_unit": dtype.time_unit, "time_zone": dtype.time_zone}
    return type(dtype), {}


def _model_name(side: str, name: str) -> str:
    camel = "".join(p[:1].upper() + p[1:] for p in name.split("_"))
    return f"{side.capitalize()}{camel}Contract"


def build_model(name: str, columns: list[ColumnSpec],
                composite_unique: list[tuple[str, ...]] | None = None) -> type[pa.DataFrameModel]:
    """A ``strict`` DataFrameModel. Attributes are positional (``c07``) with the column name as
    alias, so a column called ``source`` or ``validate`` can never shadow a model method."""
    annotations: dict[str, Any] = {}
    attrs: dict[str, Any] = {"__annotations__": annotations, "__module__": __name__}
    for i, c in enumerate(columns):
        annotation, dtype_kwargs = _annotation(c.dtype)
        attr = f"c{i:02d}"
        annotations[attr] = annotation
        attrs[attr] = pa.Field(alias=c.name, nullable=c.nullable, unique=c.unique,
                               dtype_kwargs=dtype_kwargs or None, description=c.description,
                               **{k: v for k, v in c.checks})

    class Config:
        strict = True
        unique = [list(u) for u in composite_unique] if composite_unique else None

    Config.__name__ = "Config"
    attrs["Config"] = Config
    Config.name = name  # type: ignore[attr-defined]
    return type(name, (pa.DataFrameModel,), attrs)


def _enum_checks(f: Field, side: str) -> list[tuple[str, dict[str, Any]]]:
    if not f.enum:
        return []
    allowed = list(f.enum)
    if f.norm is Norm.MULTISELECT:
        return [("multiselect_isin", {"allowed": allowed, "case_insensitive": side == LOCAL})]
    if f.norm is Norm.CUSTOM:
        return [("custom_isin", {"allowed": allowed})]
    if f.norm is Norm.ENUM and side == LOCAL:
        return [("enum_normalised", {"allowed": allowed})]
    return [("isin", {"allowed_values": allowed})]


def _length_check(n: int | None) -> list[tuple[str, dict[str, Any]]]:
    return [("str_length", {"max_value": n})] if n else []


def zuora_columns(spec: ObjectSpec) -> list[ColumnSpec]:
    out = []
    for f in spec.fields:
        checks = _enum_checks(f, ZUORA)
        if f.ztype is ZType.ID:  # a longer string is not a Zuora id at all
            checks += _length_check(f.max_length)
        # A Zuora string longer than the local VARCHAR is valid in Zuora: not a contract
        # failure but a finding for a person (``Field.misfit_sql``, reconcile.annotate).
        out.append(ColumnSpec(
            name=f.name, dtype=dtype_of(f),
            # Zuora always fills it, or the local copy has nowhere to put a NULL.
            nullable=not (f.zuora_required or (f.stored and not f.nullable)),
            unique=f.name == "Id", checks=tuple(checks),
            description=f"{spec.name}.{f.name} ({f.ztype.value})"
            + (f" -> {spec.table}.{f.column} {f.local_type}" if f.stored else ""),
        ))
    return out


def local_object_columns(spec: ObjectSpec) -> list[ColumnSpec]:
    by_column = {f.column: f for f in spec.fields if f.column}
    unique = {spec.local_pk, *spec.unique_local}
    out = []
    for c in local_schema.table_columns(spec.table):
        f = by_column.get(c.name)
        checks = _length_check(_varchar(c.local_type)) + (_enum_checks(f, LOCAL) if f else [])
        out.append(ColumnSpec(
            name=c.name, dtype=local_dtype(c.local_type), nullable=c.nullable,
            unique=c.name in unique, checks=tuple(checks),
            description=f"{spec.table}.{c.name} {c.local_type}"
            + (f" <- {spec.name}.{f.name}" if f else ""),
        ))
    return out


def local_table_columns(table: LocalTable) -> list[ColumnSpec]:
    single = {u[0] for u in table.unique if len(u) == 1} | {table.pk}
    return [ColumnSpec(name=c.name, dtype=local_dtype(c.local_type), nullable=c.nullable,
                       unique=c.name in single, checks=tuple(_length_check(_varchar(c.local_type))),
                       description=f"{table.name}.{c.name} {c.local_type}")
            for c in table.columns]


def _varchar(local_type: str) -> int | None:
    """n of ``VARCHAR(n)``, parsed the way the catalogue parses it (``Field.max_length``)."""
    return Field("_", ZType.STR, "_", local_type).max_length


@dataclass(frozen=True, eq=False)  # identity: the expressions have no meaningful ==
class RowCheck:
    """One row-level rule of a model, compiled to a polars expression."""

    column: str
    rule: str  # not_null | unique | enum | max_length
    fail: pl.Expr  # True on the rows that break the rule
    value: pl.Expr  # the offending value as text
    detail: str  # for messages: "NOT NULL", "at most 255 characters", "one of …"
    # How the first, aggregate-only pass decides (clean data never pays for a row mask):
    # "count"  probe is the exact failure count;
    # "proof"  probe is True when no row can fail (else the exact mask runs);
    # "values" probe is the column's distinct values: the rule runs on those, and only
    #          values that fail are looked up in the rows.
    kind: str = "count"
    probe: pl.Expr | None = None
    limit: int | None = None  # max_length: the VARCHAR(n) limit, for footer proofs


@dataclass(frozen=True, eq=False)
class Contract:
    """The declared contract of one extracted frame and its compiled row checks."""

    side: str  # zuora | local
    object: str  # Zuora object name; the table name for local-only tables
    table: str | None  # local table (None on the Zuora side)
    model: type[pa.DataFrameModel]
    key: str  # column giving the quarantine key
    checks: tuple[RowCheck, ...]

    @property
    def name(self) -> str:
        return self.model.__name__

    @property
    def label(self) -> str:
        """How results name it: the Zuora object, or the local table."""
        return self.table or self.object

    @property
    def columns(self) -> list[str]:
        return list(self.model.to_schema().columns)

    @functools.cached_property
    def dtypes(self) -> dict[str, pl.DataType]:
        """The declared polars type of every column, as pandera resolved the model."""
        return {n: col.dtype.type for n, col in self.model.to_schema().columns.items()}

    def needed_columns(self, proven_not_null: set[str] | frozenset[str] = frozenset(),
                       settled: Collection[RowCheck] = ()) -> list[str]:
        """Columns the row checks read: the rest need not be loaded. Not loaded either: a
        column whose only rule is not_null and that is ``proven_not_null`` (Parquet
        statistics say it has no NULL), and the columns of ``settled`` checks (proven by the
        file's column profile, :func:`settled_by_profile`). The key is read only for its own
        rules: :func:`check_rows` asks for it (:class:`KeyNeeded`) when a failing row must
        be named."""
        cols = {c for chk in self.checks if chk not in settled
                and not (chk.rule == "not_null" and chk.column in proven_not_null)
                for c in chk.column.split(",")}
        return [c for c in self.columns if c in cols]

    def not_null_columns(self) -> list[str]:
        """Columns with a not_null rule: the ones Parquet statistics may prove."""
        return [chk.column for chk in self.checks if chk.rule == "not_null"]


def _detail(name: str, stats: dict[str, Any]) -> str:
    if name == "str_length":
        return f"at most {stats.get('max_value')} characters"
    values = stats.get("allowed") or stats.get("allowed_values") or []
    how = {"enum_normalised": "a spelling of one of", "custom_isin": "empty or one of",
           "multiselect_isin": "';'-separated members of"}.get(name, "one of")
    return f"{how} {', '.join(map(str, values))}"


def compile_checks(model: type[pa.DataFrameModel]) -> tuple[RowCheck, ...]:
    """The row-level rules of ``model`` (NULL rules, uniqueness, registered and built-in
    checks) as polars expressions. A check this module cannot compile is a programming
    error, raised here at import time rather than skipped at run time."""
    sch = model.to_schema()
    out: list[RowCheck] = []
    for name, col in sch.columns.items():
        c = pl.col(name)
        text = c.cast(pl.String)
        if not col.nullable:
            out.append(RowCheck(name, "not_null", c.is_null(), text, "NOT NULL"))
        if col.unique:
            # Equal values hash equally, so distinct hashes == non-NULL rows proves there is
            # no duplicate (a hash collision only sends us to the exact check).
            out.append(RowCheck(name, "unique", c.is_not_null() & c.is_duplicated(), text,
                                "unique", "proof", _hashes_unique((name,))))
        for chk in col.checks:
            if chk.name not in CHECKS:
                raise ValueError(f"{model.__name__}.{name}: check {chk.name!r} has no compiled "
                                 f"form; add it to expectations.contracts.CHECKS")
            rule, build = CHECKS[chk.name]
            fail = c.is_not_null() & ~build(c, **chk.statistics).fill_null(False)
            detail = _detail(chk.name, chk.statistics)
            stats = chk.statistics
            if chk.name == "str_length" and stats.get("min_value") is None \
                    and stats.get("exact_value") is None:
                # A string has at least as many bytes as characters: max bytes <= n proves it.
                probe = c.str.len_bytes().max().fill_null(0) <= stats["max_value"]
                out.append(RowCheck(name, rule, fail, text, detail, "proof", probe,
                                    limit=stats["max_value"]))
            elif chk.name == "str_length":
                out.append(RowCheck(name, rule, fail, text, detail))
            else:
                out.append(RowCheck(name, rule, fail, text, detail, "values",
                                    c.drop_nulls().unique().implode()))
    for cols in sch.unique or []:
        cols = [cols] if isinstance(cols, str) else list(cols)
        key = pl.struct(cols)
        out.append(RowCheck(",".join(cols), "unique", key.is_duplicated(),
                            pl.concat_str([pl.col(x).cast(pl.String) for x in cols],
                                          separator="|", ignore_nulls=False),
                            f"unique ({', '.join(cols)})", "proof", _hashes_unique(cols)))
    return tuple(out)


def _hashes_unique(key: Iterable[str]) -> pl.Expr:
    """True when a key's values have as many distinct hashes as values: no duplicate (a hash
    collision only sends the rule to the exact check). The extractor's column profile counts
    the same hashes (``core.profile.key_hashes``), so its proof is this one."""
    h = key_hashes(tuple(key))
    return h.n_unique() == h.len()


@functools.cache
def contracts() -> dict[tuple[str, str], Contract]:
    """Every contract, keyed by (side, Zuora object name or local table name)."""
    out: dict[tuple[str, str], Contract] = {}
    for spec in OBJECTS:
        zm = build_model(_model_name(ZUORA, spec.name), zuora_columns(spec))
        out[(ZUORA, spec.name)] = Contract(ZUORA, spec.name, None, zm, "Id", compile_checks(zm))
        lm = build_model(_model_name(LOCAL, spec.table), local_object_columns(spec))
        out[(LOCAL, spec.table)] = Contract(LOCAL, spec.name, spec.table, lm, spec.key_column,
                                            compile_checks(lm))
    for t in LOCAL_TABLES:
        composite = [u for u in t.unique if len(u) > 1]
        m = build_model(_model_name(LOCAL, t.name), local_table_columns(t), composite)
        out[(LOCAL, t.name)] = Contract(LOCAL, t.name, t.name, m, t.pk, compile_checks(m))
    return out


def contract(side: str, name: str) -> Contract:
    try:
        return contracts()[(side, name)]
    except KeyError:
        raise KeyError(f"no {side} contract for {name!r}") from None


def model(side: str, name: str) -> type[pa.DataFrameModel]:
    """The declared DataFrameModel of a Zuora object (``side="zuora"``) or local table."""
    return contract(side, name).model


def settled_by_profile(c: Contract, profile: dict[str, Any] | None) -> set[RowCheck]:
    """The row checks of ``c`` that a file's column profile (``core.profile``, written by
    the extractor into the Parquet footer) proves passed without reading a row: a
    ``VARCHAR(n)`` limit when the longest value has at most n bytes, an enum rule when every
    distinct value meets it, a key's uniqueness when its values have as many distinct hashes
    as there are values. These are the same proofs the aggregate pass makes from the rows
    (:func:`compile_checks`); a check the profile cannot prove is run on the rows as usual
    (which also finds the failing rows)."""
    if not profile:
        return set()
    lengths = profile.get("max_bytes") or {}
    values = profile.get("distinct") or {}
    keys = profile.get("unique") or {}
    out = set()
    for chk in c.checks:
        if chk.rule == "max_length" and chk.kind == "proof" and chk.limit is not None:
            if chk.column in lengths and (lengths[chk.column] or 0) <= chk.limit:
                out.add(chk)
        elif chk.rule == "unique" and chk.kind == "proof":
            k = keys.get(chk.column)
            if k is not None and k["count"] == k["distinct_hashes"]:
                out.add(chk)
        elif chk.kind == "values" and values.get(chk.column) is not None:
            seen = pl.DataFrame({chk.column: values[chk.column]}, schema={chk.column: pl.String})
            if seen.filter(chk.fail).height == 0:  # the same rule the rows' values would meet
                out.add(chk)
    return out


# ---------------------------------------------------------------------------------------------
# Shape: pandera's schema validation on a zero-row frame with the extract's schema
# ---------------------------------------------------------------------------------------------
SHAPE_RULES = {"column_in_dataframe": "column_present", "column_in_schema": "strict"}


@dataclass(frozen=True)
class ShapeFailure:
    column: str
    rule: str  # column_present | strict | dtype
    detail: str

    def describe(self, label: str) -> str:
        return f"{label}.{self.column}: {self.detail} (rule: {self.rule})"


def shape_failures(c: Contract, schema: pl.Schema | dict[str, pl.DataType]) -> list[ShapeFailure]:
    """Missing, extra and wrongly typed columns of a frame with ``schema``, by pandera.

    pandera costs ~20 ms per model even on zero rows (0.45 s for all 23), so a schema that is
    exactly the model's declared one (same names, same types: :meth:`Contract.dtypes`, read
    from the model) passes at once; anything else goes to pandera, which names every
    failure. Results are cached per (contract, schema): the answer cannot change."""
    if dict(schema) == c.dtypes:
        return []
    return list(_shape_failures(c.side, c.label, tuple(dict(schema).items())))


@functools.lru_cache(maxsize=256)
def _shape_failures(side: str, name: str, schema: tuple[tuple[str, pl.DataType], ...]
                    ) -> tuple[ShapeFailure, ...]:
    c = contract(side, name)
    try:
        c.model.validate(pl.DataFrame(schema=dict(schema)), lazy=True)
        return ()
    except pa.errors.SchemaErrors as e:
        cases = e.failure_cases
    if not isinstance(cases, pl.DataFrame):  # pandera fell back to a text report
        return (ShapeFailure("*", "shape", str(cases)),)
    out: list[ShapeFailure] = []
    typed_wrong: set[str] = set()
    for row in cases.iter_rows(named=True):
        check, case = str(row["check"]), str(row["failure_case"])
        if check in SHAPE_RULES:
            rule = SHAPE_RULES[check]
            what = "column is missing" if rule == "column_present" else "column is not in the contract"
            out.append(ShapeFailure(case, rule, what))
        elif check.startswith("dtype("):
            typed_wrong.add(str(row["column"]))
            want = check[len("dtype("):-1].strip("'")
            out.append(ShapeFailure(str(row["column"]), "dtype", f"type {case}, expected {want}"))
    for row in cases.iter_rows(named=True):  # a check that raised on a correctly typed column
        check = str(row["check"])
        if (check not in SHAPE_RULES and not check.startswith("dtype(")
                and row["column"] not in typed_wrong):
            out.append(ShapeFailure(str(row["column"]), "check_raised",
                                    f"check {check} raised {row['failure_case']}"))
    return tuple(out)


def shape_results(c: Contract, failures: list[ShapeFailure], run_id: str) -> list[CheckResult]:
    if not failures:
        return [CheckResult(run_id, "pandera", c.name, c.label, None, "shape",
                            message=f"{c.label}: columns and types match the contract")]
    return [CheckResult(run_id, "pandera", c.name, c.label, f.column, f.rule, "error", "failed",
                        None, None, None, message=f.describe(c.label)) for f in failures]


# ---------------------------------------------------------------------------------------------
# Rows: the compiled checks, one parallel pass per frame
# ---------------------------------------------------------------------------------------------
class KeyNeeded(Exception):  # noqa: N818 - a request, not an error a user sees
    """:func:`check_rows` found failing rows in a frame loaded without its key column:
    load it with the key and run again (clean data never pays for reading the key)."""


@dataclass
class RowOutcome:
    results: list[CheckResult]
    quarantine: pl.DataFrame  # QUARANTINE_SCHEMA
    fatal: list[str]  # Zuora duplicate keys: messages naming object, column, rule


def row_failures(c: Contract, frame: pl.DataFrame, engine: str = "compiled",
                 not_null_exempt: dict[str, pl.Series] | None = None) -> pl.DataFrame:
    """Every (column, rule, key, value) failure of ``frame``; ``engine="pandera"`` runs
    pandera's own row checks instead (slow; for tests and the benchmark)."""
    if engine == "pandera":
        return _pandera_failures(c, frame)
    parts = []
    for chk, fail in zip(c.checks, _fail_exprs(c, not_null_exempt), strict=True):
        parts.append(frame.lazy().filter(fail).select(
            column=pl.lit(chk.column), rule=pl.lit(chk.rule),
            key=pl.col(c.key).cast(pl.String), value=chk.value))
    schema = {"column": pl.String, "rule": pl.String, "key": pl.String, "value": pl.String}
    if not parts:
        return pl.DataFrame(schema=schema)
    return pl.concat(pl.collect_all(parts), how="vertical").cast(schema)  # type: ignore[arg-type]


_PANDERA_RULES = {"not_nullable": "not_null", "field_uniqueness": "unique",
                  "multiple_fields_uniqueness": "unique"}


def _pandera_failures(c: Contract, frame: pl.DataFrame) -> pl.DataFrame:
    schema = {"column": pl.String, "rule": pl.String, "key": pl.String, "value": pl.String}
    try:
        c.model.validate(frame, lazy=True)
        return pl.DataFrame(schema=schema)
    except pa.errors.SchemaErrors as e:
        cases = e.failure_cases
    assert isinstance(cases, pl.DataFrame), cases
    rows = []
    keys = frame[c.key].cast(pl.String)
    for r in cases.filter(pl.col("index").is_not_null()).iter_rows(named=True):
        check = str(r["check"])
        rule = _PANDERA_RULES.get(check) or CHECKS[check.split("(")[0]][0]
        value = None if r["failure_case"] in (None, "null") and rule == "not_null" else r[
            "failure_case"]
        rows.append((r["column"], rule, keys[int(r["index"])], value))
    return pl.DataFrame(rows, schema=schema, orient="row")


def _fail_exprs(c: Contract, exempt: dict[str, pl.Series] | None) -> list[pl.Expr]:
    """The checks' failure masks; a NULL that the extractor produced from an unparseable
    value is exempt from not_null (the reject already quarantines it with the raw value)."""
    out = []
    for chk in c.checks:
        fail = chk.fail
        if exempt and chk.rule == "not_null" and chk.column in exempt:
            fail = fail & ~pl.col(c.key).cast(pl.String).is_in(exempt[chk.column].implode()
                                                              ).fill_null(False)
        out.append(fail)
    return out


def check_rows(c: Contract, frame: pl.DataFrame, run_id: str,
               rejects: pl.DataFrame | None = None,
               proven_not_null: set[str] | frozenset[str] = frozenset(),
               settled: Collection[RowCheck] = (), rows: int | None = None) -> RowOutcome:
    """Run the compiled row checks of ``c`` on ``frame``: one result per rule, quarantine rows
    for every failing (row, column, rule), and the Zuora duplicate-key failures that must stop
    the run. ``rejects`` (the snapshot's unparseable values for this object) are quarantined
    whole, with their raw value. not_null on a ``proven_not_null`` column passes without
    reading it (the caller knows from the Parquet statistics; ``frame`` may lack it), and so
    does every ``settled`` check (proven by the file's column profile). ``rows``: the row
    count, when ``frame`` holds no column (everything proven)."""
    exempt: dict[str, pl.Series] = {}
    results: list[CheckResult] = []
    quarantine: list[pl.DataFrame] = []
    total = frame.height if rows is None else rows
    if rejects is not None and rejects.height:
        results, quarantine, exempt = _rejects(c, rejects, total, run_id)
    proven = [chk for chk in c.checks
              if (chk.rule == "not_null" and chk.column in proven_not_null
                  and chk.column not in exempt) or chk in settled]
    results += [CheckResult(run_id, "pandera", c.name, c.label, chk.column, chk.rule, "error",
                            "passed", 0, 0.0, total) for chk in proven]
    c = replace(c, checks=tuple(chk for chk in c.checks if chk not in proven))
    fails = _fail_exprs(c, exempt)
    probes = [(f.sum() if chk.kind == "count" or chk.probe is None else chk.probe).alias(f"p{i}")
              for i, (chk, f) in enumerate(zip(c.checks, fails, strict=True))]
    first = frame.select(probes) if probes else pl.DataFrame()
    fatal: list[str] = []
    for i, (chk, fail) in enumerate(zip(c.checks, fails, strict=True)):
        probe = first.get_column(f"p{i}")
        if chk.kind == "proof" and chk.probe is not None:
            mask = None if probe[0] else fail
        elif chk.kind == "values":
            distinct = probe[0].rename(chk.column.split(",")[0])
            bad_values = distinct.to_frame().filter(chk.fail).to_series()
            mask = pl.col(distinct.name).is_in(bad_values.implode()) if bad_values.len() else None
        else:
            mask = fail if probe[0] else None
        if mask is not None and c.key not in frame.columns:
            raise KeyNeeded(f"{c.label}: {chk.column} breaks '{chk.detail}'; the key names "
                            "the rows")
        bad = frame.lazy().filter(mask).select(
            key=pl.col(c.key).cast(pl.String), value=chk.value).collect() \
            if mask is not None else None
        n = 0 if bad is None else bad.height
        if n == 0:
            results.append(CheckResult(run_id, "pandera", c.name, c.label, chk.column, chk.rule,
                                       "error", "passed", 0, 0.0, total))
            continue
        assert bad is not None
        sample = bad.head(SAMPLE)
        if c.side == ZUORA and chk.rule == "unique" and chk.column == c.key:
            dupes = bad["key"].n_unique()
            examples = ", ".join(map(repr, bad["key"].unique(maintain_order=True).head(SAMPLE)))
            msg = (f"{c.label}.{chk.column}: {dupes:,} key value(s) occur more than once "
                   f"({n:,} rows), e.g. {examples} (rule: unique)")
            fatal.append(msg)
        else:
            msg = (f"{c.label}.{chk.column}: {n:,} of {total:,} rows break '{chk.detail}' "
                   f"(rule: {chk.rule}); quarantined")
            quarantine.append(bad.select(
                side=pl.lit(c.side), object=pl.lit(c.object), table=pl.lit(c.table, pl.String),
                key="key", column=pl.lit(chk.column), check=pl.lit(chk.rule), value="value",
                severity=pl.lit("error")))
        results.append(CheckResult(
            run_id, "pandera", c.name, c.label, chk.column, chk.rule, "error", "failed", n,
            pct(n, total), total, sample["key"].to_list(), sample["value"].to_list(), msg))
    q = pl.concat(quarantine, how="vertical").cast(QUARANTINE_SCHEMA) if quarantine \
        else empty_quarantine()  # type: ignore[arg-type]
    return RowOutcome(results, q, fatal)


def _rejects(c: Contract, rejects: pl.DataFrame, total: int, run_id: str
             ) -> tuple[list[CheckResult], list[pl.DataFrame], dict[str, pl.Series]]:
    """Extractor rejects of one Zuora object → results (source ``extract``), quarantine rows
    and, per field, the keys whose NULL is explained by the reject."""
    results = []
    if "location" not in rejects.columns:  # snapshots written before rejects named places
        rejects = rejects.with_columns(location=pl.lit(None, pl.String))
    for (field, rule), part in rejects.group_by(["field", "rule"], maintain_order=True):
        sample = part.head(SAMPLE)
        n = part.height
        # A warning: each record is quarantined (left out, reported `quarantined`) and the
        # run goes on; the share check (expectations.quarantine) is the error when too many.
        results.append(CheckResult(
            run_id, "extract", "rejects", c.label, str(field), str(rule), "warning", "failed",
            n, pct(n, total), total, sample["key"].to_list(), sample["value"].to_list(),
            f"{c.label}.{field}: {n:,} value(s) are not valid Zuora values (rule: {rule}); "
            "their records are quarantined"))
    # A record whose key is unreadable is named by where it sits in its file.
    value = pl.col("value").cast(pl.String)
    q = rejects.select(
        side=pl.lit(c.side), object=pl.lit(c.object), table=pl.lit(None, pl.String),
        key=pl.col("key").cast(pl.String), column=pl.col("field"), check=pl.col("rule"),
        value=pl.when(pl.col("key").is_null() & pl.col("location").is_not_null())
        .then(pl.format("{} (at {})", value, pl.col("location"))).otherwise(value),
        severity=pl.lit("error"))
    exempt = {str(f): part["key"].cast(pl.String)
              for (f,), part in rejects.group_by(["field"])}
    return results, [q], exempt
