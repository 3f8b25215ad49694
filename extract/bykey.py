"""Read a handful of Zuora records by key (issue 15): the targeted sync's reader.

Two APIs, both synchronous and cursor-paged (docs/zuora-api.md §2.5, §2.7):

* **ZOQL** (``POST /v1/action/query`` + ``queryMore``): ``select <catalogue fields> from
  <Object> where F = 'a' or F = 'b' …``; JSON records with PascalCase names, nulls omitted;
* **Object Query** (``GET /object-query/<collection>?filter[]=f.IN:[a,b]``): lower-camel names
  (:attr:`core.catalog.Field.object_query_name`), nulls omitted, ``nextPage`` cursor.

Either way the records become the SAME typed frame the extractor writes into a snapshot
(:func:`core.values.parse_frame`: one column per catalogue field, catalogue order, the
snapshot's dtypes), so a sync's rows go through exactly the nightly's normalisation. Values
that do not parse are returned as rejects (the caller quarantines or refuses them), never
silently nulled. JSON numbers are read as their literal text (``parse_float=str``), so a
decimal is never rounded through a float on the way in.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import polars as pl

from core.catalog import ObjectSpec
from core.values import REJECTS, empty_frame, parse_frame
from extract.client import ZuoraClient, ZuoraServerError

APIS = ("zoql", "object_query")
# keys per request: short enough for a ZOQL statement and a URL, few enough requests
CHUNK = 50
OQ_PAGE = 99  # Object Query's largest page
ZOQL_PAGE = 2000


@dataclass(frozen=True)
class ByKey:
    """Records of one object read by key: ``frame`` typed as the snapshot types it, and the
    ``rejects`` (values that did not parse, :data:`core.values.REJECTS`)."""

    spec: ObjectSpec
    frame: pl.DataFrame
    rejects: pl.DataFrame
    requests: int


def _chunks(values: Iterable[str], n: int = CHUNK) -> Iterator[list[str]]:
    vals = list(dict.fromkeys(v for v in values if v is not None))
    for i in range(0, len(vals), n):
        yield vals[i:i + n]


def _zoql_literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _text(value: Any) -> str | None:
    """A JSON value as the raw text the typed parser expects (booleans ``true``/``false``;
    numbers arrive as their literal text already)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _body(resp: Any, what: str) -> Any:
    try:
        return json.loads(resp.text, parse_float=str, parse_int=str)
    except ValueError as e:
        raise ZuoraServerError(f"{what}: answered {resp.status_code} with a body that is not "
                               f"JSON", status=resp.status_code) from e


def _zoql_records(client: ZuoraClient, spec: ObjectSpec, field: str | None,
                  values: list[str]) -> tuple[list[dict[str, Any]], int]:
    q = f"select {', '.join(spec.field_names)} from {spec.name}"
    if field is not None:
        q += " where " + " or ".join(f"{field} = {_zoql_literal(v)}" for v in values)
    body = _body(client.request("POST", "/v1/action/query", route="query",
                                json={"queryString": q, "conf": {"batchSize": ZOQL_PAGE}},
                                headers={"Accept": "application/json"}), "POST /v1/action/query")
    out, calls = list(body.get("records") or []), 1
    while not body.get("done", True) and body.get("queryLocator"):
        body = _body(client.request("POST", "/v1/action/queryMore", route="queryMore",
                                    json={"queryLocator": body["queryLocator"]},
                                    headers={"Accept": "application/json"}),
                     "POST /v1/action/queryMore")
        out += list(body.get("records") or [])
        calls += 1
    return out, calls


def _oq_records(client: ZuoraClient, spec: ObjectSpec, field: str,
                values: list[str]) -> tuple[list[dict[str, Any]], int]:
    camel = {f.object_query_name: f.name for f in spec.fields}
    respell = {f.name: f.from_object_query for f in spec.fields if f.object_query_values}
    f = spec.field(field).object_query_name
    path = f"/object-query/{spec.object_query_path}"
    params: dict[str, Any] = {
        "filter[]": [f"{f}.IN:[{','.join(values)}]"], "pageSize": str(OQ_PAGE),
        "fields[]": ",".join(camel)}
    out: list[dict[str, Any]] = []
    calls = 0
    while True:
        body = _body(client.request("GET", path, route="object_query", params=params,
                                    headers={"Accept": "application/json"}), f"GET {path}")
        calls += 1
        page = [{camel.get(k, k): v for k, v in r.items()} for r in body.get("data") or []]
        for r in page if respell else ():  # Object Query's enum spellings → the read spelling
            for name, back in respell.items():
                if r.get(name) in back:
                    r[name] = back[r[name]]
        out += page
        nxt = body.get("nextPage")
        if not nxt:
            return out, calls
        params = {**params, "cursor": nxt}


def read_by_key(client: ZuoraClient, spec: ObjectSpec, field: str, values: Iterable[str], *,
                tenant_tz: str, api: str = "zoql") -> ByKey:
    """The records of ``spec`` whose ``field`` (a catalogue field name) is one of ``values``,
    read with ``api`` (``zoql`` or ``object_query``). Nothing asked: an empty typed frame and
    no request."""
    if api not in APIS:
        raise ValueError(f"unknown API {api!r}; use one of {', '.join(APIS)}")
    spec.field(field)  # a typo names the object and the field, before any request
    fetch = _zoql_records if api == "zoql" else _oq_records
    records: list[dict[str, Any]] = []
    calls = 0
    for chunk in _chunks(values):
        got, n = fetch(client, spec, field, chunk)
        records += got
        calls += n
    return _typed(spec, records, tenant_tz, calls)


def read_all(client: ZuoraClient, spec: ObjectSpec, *, tenant_tz: str) -> ByKey:
    """Every record of ``spec`` with ZOQL (paged by ``queryMore``): for the small catalog
    objects a whole-catalog sync reads; big objects go through the extractor's AQuA path."""
    records, calls = _zoql_records(client, spec, None, [])
    return _typed(spec, records, tenant_tz, calls)


def _typed(spec: ObjectSpec, records: list[dict[str, Any]], tenant_tz: str,
           calls: int) -> ByKey:
    if not records:
        return ByKey(spec, empty_frame(spec), pl.DataFrame(schema=REJECTS), calls)
    names = spec.field_names
    raw = pl.DataFrame([{n: _text(r.get(n)) for n in names} for r in records],
                       schema={n: pl.String for n in names}, orient="row")
    raw = raw.unique(subset=["Id"], keep="last", maintain_order=True)
    parsed = parse_frame(spec, raw, tenant_tz)
    return ByKey(spec, parsed.frame, parsed.rejects, calls)
