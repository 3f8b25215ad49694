"""Object Query: ``GET /object-query/{objects}`` and ``/object-query/{objects}/{key}``
[D-OQ; D-OQS; D-PAG].

camelCase fields (``termStartDate``, ``mRR``), dateTimes ``2025-03-25T06:26:14-07:00``, null
fields omitted unless ``includeNullFields=true``; ``pageSize`` 1..99 (default 10, else 400);
keyset paging ordered ``updatedDate DESC, id DESC`` (``sort[]`` replaces the first key) with
an opaque base64 ``nextPage`` cursor, absent on the last page; ``filter[]`` ``field.OP:value``
with ``EQ NE LT GT LE GE SW IN``, ANDed. Parameter names are case-insensitive.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl

from core.catalog import BY_NAME, Field, ObjectSpec, ZType
from sandbox.server import render, zoql
from sandbox.server.store import Store
from sandbox.server.wire import Response, json_response, v1_error

DEFAULT_PAGE = 10
MAX_PAGE = 99
# Number-like keys accepted by /{key} besides the Id.
KEY_FIELDS = {
    "Account": "AccountNumber", "Subscription": "Name", "RatePlanCharge": "ChargeNumber",
    "Product": "ProductNumber", "ProductRatePlan": "ProductRatePlanNumber",
    "ProductRatePlanCharge": "ProductRatePlanChargeNumber",
}
_FILTER = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\.(EQ|NE|LT|GT|LE|GE|SW|IN):(.*)$", re.S | re.I)
_SORT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\.(ASC|DESC)$", re.I)


def kebab_plural(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower() + "s"


PATHS = {kebab_plural(name): spec for name, spec in BY_NAME.items()}


class _Bad(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _field(spec: ObjectSpec, name: str, what: str) -> Field:
    for f in spec.fields:
        if f.name.lower() == name.lower():
            return f
    raise _Bad(f"{what}: {name!r} is not a field of {kebab_plural(spec.name)}")


def _cursor_value(f: Field, v: Any, tz: str) -> Any:
    if v is None:
        return None
    if f.ztype is ZType.DATETIME:
        t = v.replace(tzinfo=dt.UTC).astimezone(ZoneInfo(tz))
        return t.isoformat(timespec="seconds" if t.microsecond == 0 else "microseconds")
    if f.ztype is ZType.DATE:
        return v.isoformat()
    if f.ztype is ZType.DECIMAL:
        return str(v)
    return v


def _from_cursor(f: Field, v: Any, tz: str) -> Any:
    if v is None:
        return None
    if f.ztype is ZType.DATETIME:
        return zoql.datetime_literal(str(v), tz)[0]
    if f.ztype in (ZType.INT, ZType.BOOL):
        return v
    return zoql.typed_literal(f, str(v))


def _lit(f: Field, value: Any) -> pl.Expr:
    return pl.lit(value, render_dtype(f))


def render_dtype(f: Field) -> pl.DataType:
    return {ZType.DATETIME: pl.Datetime("us"), ZType.DATE: pl.Date(),
            ZType.DECIMAL: pl.Decimal(38, 9), ZType.INT: pl.Int64(),
            ZType.BOOL: pl.Boolean()}.get(f.ztype, pl.String())


class ObjectQuery:
    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, seg: list[str], params: list[tuple[str, str]]) -> Response:
        spec = PATHS.get(seg[0].lower())
        if spec is None or spec.name not in self.store.objects:
            return v1_error(404, 50000040, f"object-query has no {seg[0]!r}; supported: "
                            f"{', '.join(k for k, s in PATHS.items() if s.name in self.store.objects)}")
        try:
            return self._get(spec, seg[1] if len(seg) > 1 else None, params)
        except _Bad as e:
            return v1_error(e.status, 50000020 if e.status == 400 else 50000040, str(e))

    def _get(self, spec: ObjectSpec, key: str | None,
             params: list[tuple[str, str]]) -> Response:
        tz = self.store.tz
        multi: dict[str, list[str]] = {}
        for k, v in params:
            k = k.lower()
            if k.startswith(spec.name.lower() + "."):
                k = k.split(".", 1)[1]
            multi.setdefault(k.removesuffix("[]"), []).append(v)
        known = {"pagesize", "cursor", "filter", "sort", "fields", "includenullfields",
                 "expand"}
        unknown = set(multi) - known
        if unknown:
            raise _Bad(f"unknown query parameter(s): {', '.join(sorted(unknown))}")
        if "expand" in multi:
            raise _Bad("expand[] is not supported by the sandbox: list the child objects "
                       "directly (Zuora truncates expanded children at pageSize anyway)")
        include_nulls = (multi.get("includenullfields", ["false"])[-1].lower() == "true")
        names = [f.name for f in spec.fields]
        if "fields" in multi:
            chosen = [_field(spec, n.strip(), "fields[]").name
                      for v in multi["fields"] for n in v.split(",") if n.strip()]
            names = list(dict.fromkeys(["Id", *chosen]))
        camel = {n: spec.field(n).object_query_name for n in names}
        df = self.store.live(spec.name)

        if key is not None:
            hit = df.filter(pl.col("Id") == key)
            if hit.height == 0 and spec.name in KEY_FIELDS:
                hit = df.filter(pl.col(KEY_FIELDS[spec.name]) == key)
                order = ["IsLatestVersion", "UpdatedDate"] if "IsLatestVersion" in df.columns \
                    else ["UpdatedDate"]
                hit = hit.sort(order, descending=True, nulls_last=True).head(1)
            if hit.height == 0:
                raise _Bad(f"{spec.name} {key!r} not found", 404)
            rec = render.records(spec, hit.select(names), tz, "object_query", camel,
                                 include_nulls)[0]
            return json_response(rec)

        size = DEFAULT_PAGE
        if "pagesize" in multi:
            raw = multi["pagesize"][-1]
            try:
                size = int(raw)
            except ValueError:
                raise _Bad(f"pageSize {raw!r} is not an integer") from None
            if not 1 <= size <= MAX_PAGE:
                raise _Bad(f"pageSize must be between 1 and {MAX_PAGE}, got {size}")

        cond = pl.lit(True)
        for raw in multi.get("filter", []):
            cond = cond & self._filter(spec, raw)

        first, desc = _field(spec, "UpdatedDate", "sort"), True
        if "sort" in multi:
            if len(multi["sort"]) > 1:
                raise _Bad("only one sort[] field is supported")
            m = _SORT.match(multi["sort"][0])
            if not m:
                raise _Bad(f"sort[] {multi['sort'][0]!r} is not field.ASC|DESC")
            first, desc = _field(spec, m.group(1), "sort[]"), m.group(2).upper() == "DESC"
        keys = [first.name] if first.name == "Id" else [first.name, "Id"]

        if "cursor" in multi:
            cond = cond & self._after(spec, multi["cursor"][-1], keys, desc)

        lf = df.lazy().filter(cond.fill_null(False)).sort(
            [zoql.column(spec.field(k)) for k in keys], descending=desc, nulls_last=True,
            maintain_order=True)
        page = lf.head(size + 1).collect()
        out: dict[str, Any] = {}
        if page.height > size:
            page = page.head(size)
            last = page.row(size - 1, named=True)
            out["nextPage"] = base64.b64encode(json.dumps([
                {"value": _cursor_value(spec.field(k), last[k], tz),
                 "orderBy": {"field": k, "order": "DESC" if desc else "ASC"}} for k in keys
            ]).encode()).decode()
        out["data"] = render.records(spec, page.select(names), tz, "object_query", camel,
                                     include_nulls)
        if "nextPage" in out:  # nextPage first, as Zuora shows it
            out = {"nextPage": out["nextPage"], "data": out["data"]}
        return json_response(out)

    def _after(self, spec: ObjectSpec, cursor: str, keys: list[str], desc: bool) -> pl.Expr:
        try:
            pad = "=" * (-len(cursor) % 4)
            state = json.loads(base64.b64decode(cursor + pad, validate=False))
            fields = [s["orderBy"]["field"] for s in state]
            values = [s["value"] for s in state]
        except (ValueError, KeyError, TypeError):
            raise _Bad(f"invalid cursor {cursor[:40]!r}") from None
        if fields != keys:
            raise _Bad("the cursor does not belong to this sort order; pass nextPage unchanged "
                       "with the same filter[] and sort[]")
        tz = self.store.tz
        try:
            vals = [_from_cursor(spec.field(k), v, tz) for k, v in zip(keys, values,
                                                                       strict=True)]
        except (ValueError, InvalidOperation):
            raise _Bad(f"invalid cursor {cursor[:40]!r}") from None

        def beyond(k: str, v: Any) -> pl.Expr:
            col = zoql.column(spec.field(k))
            if v is None:  # nulls sort last: nothing non-null lies beyond a null
                return pl.lit(False)
            f = spec.field(k)
            return ((col < _lit(f, v)) if desc else (col > _lit(f, v))) | col.is_null()

        def same(k: str, v: Any) -> pl.Expr:
            col = zoql.column(spec.field(k))
            return col.is_null() if v is None else (col == _lit(spec.field(k), v))

        if len(keys) == 1:
            return beyond(keys[0], vals[0])
        return beyond(keys[0], vals[0]) | (same(keys[0], vals[0]) & beyond(keys[1], vals[1]))

    def _filter(self, spec: ObjectSpec, raw: str) -> pl.Expr:
        m = _FILTER.match(raw)
        if not m:
            raise _Bad(f"filter[] {raw!r} is not field.OP:value (OP one of EQ NE LT GT LE GE "
                       "SW IN)")
        f = _field(spec, m.group(1), "filter[]")
        op, value = m.group(2).upper(), m.group(3)
        col = zoql.column(f)
        if value == "null":
            if op == "EQ":
                return col.is_null()
            if op == "NE":
                return col.is_not_null()
            raise _Bad(f"filter[] {raw!r}: null only works with EQ or NE")
        if value in ("\x02\x03", "%02%03"):
            value = ""
        try:
            if op == "IN":
                if not (value.startswith("[") and value.endswith("]")):
                    raise _Bad(f"filter[] {raw!r}: IN needs [a,b,...]")
                items = [v.strip() for v in value[1:-1].split(",") if v.strip()]
                return col.is_in([self._value(f, v)[0] for v in items])
            if op == "SW":
                if f.ztype not in (ZType.STR, ZType.ID):
                    raise _Bad(f"filter[] {raw!r}: SW only works on text fields")
                return col.str.starts_with(value)
            lo, hi = self._value(f, value)
        except (ValueError, InvalidOperation):
            raise _Bad(f"filter[] {raw!r}: {value!r} is not a valid {f.ztype.value} "
                       "value") from None
        a = _lit(f, lo)
        if hi is None:
            return {"EQ": col == a, "NE": col != a, "LT": col < a, "GT": col > a,
                    "LE": col <= a, "GE": col >= a}[op]
        b = _lit(f, hi)  # a date on a dateTime field: that tenant-zone day
        return {"EQ": (col >= a) & (col < b), "NE": (col < a) | (col >= b), "LT": col < a,
                "GT": col >= b, "LE": col < b, "GE": col >= a}[op]

    def _value(self, f: Field, value: str) -> tuple[Any, Any]:
        if f.ztype is ZType.DATETIME:
            return zoql.datetime_literal(value, self.store.tz)
        v = zoql.typed_literal(f, value)
        if f.ztype is ZType.DECIMAL:
            v = Decimal(str(v))
        return v, None
