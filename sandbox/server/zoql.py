"""The ZOQL subset the sandbox understands, compiled to a set-based polars filter.

    select <field>[, <field>...] from <Object>
        [where <field> <op> <literal> [and|or ...]] [order by <field> [asc|desc]] [limit <n>]

``op`` is one of ``= != < <= > >=`` or ``is [not] null``; literals are quoted strings, numbers,
``true``/``false`` or ``null``. Keywords must be lower case and ``and`` binds tighter than
``or``, as in Zuora [D-ZOQL]. DateTime literals without an offset are tenant-zone wall time,
with an offset (or ``Z``) they are converted, and a date-only literal on a dateTime field means
that whole tenant-zone day [D-ZOQL compare-datetimes].
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

import polars as pl

from core.catalog import BY_NAME, Field, ObjectSpec, ZType

KEYWORDS = {"select", "from", "where", "and", "or", "order", "by", "asc", "desc", "limit",
            "is", "not", "null"}
OPS = ("!=", "<=", ">=", "=", "<", ">")
_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<str>'(?:[^'\\]|\\.|'')*')
  | (?P<op>!=|<=|>=|=|<|>)
  | (?P<comma>,)
  | (?P<num>-?\d+(?:\.\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<bad>.)
""", re.VERBOSE)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_NAIVE = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)$")
_OFFSET = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)"
                     r"\s*(Z|[+-]\d{2}:?\d{2})$")


class ZoqlError(ValueError):
    """A query the sandbox (like Zuora) refuses. ``code`` is the Zuora fault code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Cond:
    field: Field
    op: str  # = != < <= > >= isnull notnull
    literal: str | None  # raw literal text (unquoted), None for null tests


@dataclass
class Query:
    spec: ObjectSpec
    fields: list[Field]
    where: list[list[Cond]] = field(default_factory=list)  # OR of AND-groups
    order_by: tuple[Field, bool] | None = None  # (field, descending)
    limit: int | None = None
    text: str = ""

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]


def _tokens(text: str) -> list[tuple[str, str]]:
    out = []
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        if kind == "ws":
            continue
        if kind == "bad":
            raise ZoqlError("MALFORMED_QUERY",
                            f"malformed query: unexpected character {m.group()!r} at "
                            f"position {m.start()}")
        val = m.group()
        if kind == "ident" and val.lower() in KEYWORDS:
            if val != val.lower():
                raise ZoqlError("MALFORMED_QUERY",
                                f"malformed query: keywords must be lower case, found {val!r}")
            kind = "kw"
        out.append((kind, val))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def next(self, what: str) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise ZoqlError("MALFORMED_QUERY", f"malformed query: expected {what} at the end")
        self.i += 1
        return tok

    def kw(self, word: str) -> None:
        tok = self.next(f"'{word}'")
        if tok != ("kw", word):
            raise ZoqlError("MALFORMED_QUERY", f"malformed query: expected '{word}', "
                            f"found {tok[1]!r}")

    def at_kw(self, word: str) -> bool:
        return self.peek() == ("kw", word)


def _field(spec: ObjectSpec, name: str) -> Field:
    base = name
    if "." in name:
        prefix, _, base = name.rpartition(".")
        if prefix.lower() != spec.name.lower():
            raise ZoqlError("INVALID_FIELD",
                            f"invalid field for query: {name.lower()} (joined objects are not "
                            f"supported by the sandbox; query {prefix} separately)")
    for f in spec.fields:
        if f.name.lower() == base.lower():
            return f
    raise ZoqlError("INVALID_FIELD", f"invalid field for query: {spec.name.lower()}."
                    f"{base.lower()}")


def parse(text: str, objects: set[str] | None = None) -> Query:
    """Parse ``text``; ``objects`` limits the FROM object to those the tenant holds."""
    p = _Parser(text.strip())
    p.kw("select")
    raw_fields: list[str] = []
    while True:
        kind, val = p.next("a field name")
        if kind != "ident":
            raise ZoqlError("MALFORMED_QUERY",
                            f"malformed query: expected a field name, found {val!r}"
                            + (" (ZOQL has no *)" if val == "*" else ""))
        raw_fields.append(val)
        if p.peek() and p.peek()[0] == "comma":
            p.i += 1
            continue
        break
    p.kw("from")
    kind, obj = p.next("an object name")
    if kind != "ident":
        raise ZoqlError("MALFORMED_QUERY", f"malformed query: expected an object, found {obj!r}")
    spec = next((s for n, s in BY_NAME.items() if n.lower() == obj.lower()), None)
    if spec is None or (objects is not None and spec.name not in objects):
        raise ZoqlError("INVALID_TYPE", f"invalid object for query: {obj} (the tenant has: "
                        f"{', '.join(sorted(objects or BY_NAME))})")
    q = Query(spec, [_field(spec, f) for f in raw_fields], text=text)
    if p.at_kw("where"):
        p.i += 1
        group: list[Cond] = []
        while True:
            group.append(_cond(p, spec))
            if p.at_kw("and"):
                p.i += 1
            elif p.at_kw("or"):
                p.i += 1
                q.where.append(group)
                group = []
            else:
                break
        q.where.append(group)
        if sum(len(g) for g in q.where) > 200:
            raise ZoqlError("MALFORMED_QUERY", "malformed query: more than 200 conditions")
    if p.at_kw("order"):
        p.i += 1
        p.kw("by")
        kind, name = p.next("a field name")
        desc = False
        if p.at_kw("asc") or p.at_kw("desc"):
            desc = p.next("asc|desc")[1] == "desc"
        q.order_by = (_field(spec, name), desc)
    if p.at_kw("limit"):
        p.i += 1
        kind, n = p.next("a number")
        if kind != "num" or not n.isdigit():
            raise ZoqlError("MALFORMED_QUERY", f"malformed query: bad limit {n!r}")
        q.limit = int(n)
    if p.peek() is not None:
        raise ZoqlError("MALFORMED_QUERY",
                        f"malformed query: unexpected {p.peek()[1]!r} after the query")
    return q


def _cond(p: _Parser, spec: ObjectSpec) -> Cond:
    kind, name = p.next("a field name")
    if kind != "ident":
        raise ZoqlError("MALFORMED_QUERY", f"malformed query: expected a field, found {name!r}")
    f = _field(spec, name)
    if p.at_kw("is"):
        p.i += 1
        neg = p.at_kw("not")
        if neg:
            p.i += 1
        p.kw("null")
        return Cond(f, "notnull" if neg else "isnull", None)
    kind, op = p.next("an operator")
    if kind != "op":
        raise ZoqlError("MALFORMED_QUERY", f"malformed query: expected one of "
                        f"{' '.join(OPS)} after {name}, found {op!r}")
    kind, lit = p.next("a value")
    if kind == "str":
        value = lit[1:-1].replace("\\'", "'").replace("''", "'").replace("\\\\", "\\")
    elif kind == "num" or (kind == "kw" and lit in ("true", "false")) or (
            kind == "ident" and lit.lower() in ("true", "false")):
        value = lit
    elif kind == "kw" and lit == "null":
        if op not in ("=", "!="):
            raise ZoqlError("MALFORMED_QUERY", f"malformed query: {name} {op} null")
        return Cond(f, "isnull" if op == "=" else "notnull", None)
    else:
        raise ZoqlError("MALFORMED_QUERY", f"malformed query: expected a value after "
                        f"{name} {op}, found {lit!r}")
    return Cond(f, op, value)


# -- compiling -----------------------------------------------------------------------------------

def _bad_value(f: Field, value: str) -> ZoqlError:
    return ZoqlError("INVALID_VALUE",
                     f"invalid value for {f.name} ({f.ztype.value}): {value!r}")


def datetime_literal(value: str, tz: str) -> tuple[dt.datetime, dt.datetime | None]:
    """(start, end) in naive UTC: an instant has end None; a date-only literal is the
    tenant-zone day [start, end)."""
    zone = ZoneInfo(tz)
    value = value.strip()
    if _DATE.match(value):
        day = dt.date.fromisoformat(value)
        start = dt.datetime.combine(day, dt.time(), zone)
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), zone)
        return _utc(start), _utc(end)
    m = _OFFSET.match(value)
    if m:
        off = m.group(3)
        off = "+00:00" if off == "Z" else (off if ":" in off else off[:3] + ":" + off[3:])
        return _utc(dt.datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}{off}")), None
    m = _NAIVE.match(value)
    if m:
        naive = dt.datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}")
        return _utc(naive.replace(tzinfo=zone)), None
    raise ValueError(value)


def _utc(t: dt.datetime) -> dt.datetime:
    return t.astimezone(dt.UTC).replace(tzinfo=None)


def typed_literal(f: Field, value: str) -> object:
    match f.ztype:
        case ZType.DATE:
            return dt.date.fromisoformat(value.strip()[:10])
        case ZType.DECIMAL:
            return Decimal(value)
        case ZType.INT:
            d = Decimal(value)
            if d != d.to_integral_value():
                raise ValueError(value)
            return int(d)
        case ZType.BOOL:
            if value.lower() not in ("true", "false"):
                raise ValueError(value)
            return value.lower() == "true"
        case _:
            return value


_CMP = {
    "=": lambda c, v: c == v, "!=": lambda c, v: c != v, "<": lambda c, v: c < v,
    "<=": lambda c, v: c <= v, ">": lambda c, v: c > v, ">=": lambda c, v: c >= v,
}


def column(f: Field) -> pl.Expr:
    """The column as its catalogue type (the store keeps some text columns Categorical)."""
    col = pl.col(f.name)
    return col.cast(pl.String) if f.ztype in (ZType.STR, ZType.ID) else col


def cond_expr(c: Cond, tz: str) -> pl.Expr:
    col = column(c.field)
    if c.op == "isnull":
        return col.is_null()
    if c.op == "notnull":
        return col.is_not_null()
    assert c.literal is not None
    try:
        if c.field.ztype is ZType.DATETIME:
            start, end = datetime_literal(c.literal, tz)
            lo = pl.lit(start, pl.Datetime("us"))
            if end is None:
                return _CMP[c.op](col, lo)
            hi = pl.lit(end, pl.Datetime("us"))
            return {
                "=": (col >= lo) & (col < hi), "!=": (col < lo) | (col >= hi),
                "<": col < lo, "<=": col < hi, ">": col >= hi, ">=": col >= lo,
            }[c.op]
        value = typed_literal(c.field, c.literal)
    except (ValueError, InvalidOperation):
        raise _bad_value(c.field, c.literal) from None
    dtype = {ZType.DECIMAL: pl.Decimal(38, 9), ZType.INT: pl.Int64, ZType.DATE: pl.Date,
             ZType.BOOL: pl.Boolean}.get(c.field.ztype, pl.String)
    return _CMP[c.op](col, pl.lit(value, dtype))


def where_expr(q: Query, tz: str) -> pl.Expr | None:
    if not q.where:
        return None
    ors = []
    for group in q.where:
        e = cond_expr(group[0], tz)
        for c in group[1:]:
            e = e & cond_expr(c, tz)
        ors.append(e)
    out = ors[0]
    for e in ors[1:]:
        out = out | e
    return out


def run(q: Query, frame: pl.DataFrame, tz: str, extra: list[str] | None = None) -> pl.DataFrame:
    """Filter/sort/limit ``frame``; keeps the selected fields plus ``extra`` columns."""
    lf = frame.lazy()
    w = where_expr(q, tz)
    if w is not None:
        lf = lf.filter(w.fill_null(False))
    if q.order_by is not None:
        f, desc = q.order_by
        lf = lf.sort(column(f), descending=desc, nulls_last=True, maintain_order=True)
    if q.limit is not None:
        lf = lf.head(q.limit)
    cols = list(dict.fromkeys([*q.names, *(extra or [])]))
    return lf.select(cols).collect()
