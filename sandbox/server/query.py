"""ZOQL ``POST /v1/action/query`` and ``POST /v1/action/queryMore`` [S-ACT; D-QM].

Pages of at most 2,000 records (``conf.batchSize`` 1..2000; more is capped), ``done`` and a
``queryLocator`` of the form ``<cursor>-<offset>`` while more remain, null fields omitted.
A cursor holds the filtered typed frame of the moment of the query; it expires after
``locator_ttl`` seconds without use (Zuora: 15 minutes).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import polars as pl

from sandbox.server import render, zoql
from sandbox.server.store import Store
from sandbox.server.wire import Response, actions_error, json_response, new_id

PAGE = 2000


@dataclass
class Cursor:
    query: zoql.Query
    frame: pl.DataFrame
    page: int
    used: float


class Zoql:
    def __init__(self, store: Store, locator_ttl: float = 900.0) -> None:
        self.store = store
        self.ttl = locator_ttl
        self._cursors: dict[str, Cursor] = {}
        self._lock = threading.Lock()

    def query(self, body: Any) -> Response:
        if not isinstance(body, dict) or not isinstance(body.get("queryString"), str):
            return actions_error(400, "MALFORMED_QUERY",
                                 "the request body must be {\"queryString\": \"select ...\"}")
        page = PAGE
        conf = body.get("conf")
        if isinstance(conf, dict) and conf.get("batchSize") is not None:
            try:
                page = int(conf["batchSize"])
            except (TypeError, ValueError):
                return actions_error(400, "INVALID_VALUE",
                                     f"conf.batchSize {conf['batchSize']!r} is not an integer")
            if page < 1:
                return actions_error(400, "INVALID_VALUE", "conf.batchSize must be 1..2000")
            page = min(page, PAGE)
        try:
            q = zoql.parse(body["queryString"], set(self.store.objects))
            frame = zoql.run(q, self.store.live(q.spec.name), self.store.tz)
        except zoql.ZoqlError as e:
            return actions_error(400, e.code, e.message)
        return self._page(new_id(), Cursor(q, frame, page, time.monotonic()), 0)

    def query_more(self, body: Any) -> Response:
        loc = body.get("queryLocator") if isinstance(body, dict) else None
        if not isinstance(loc, str) or "-" not in loc:
            return actions_error(400, "INVALID_VALUE", f"invalid queryLocator {loc!r}")
        cid, _, off = loc.rpartition("-")
        now = time.monotonic()
        with self._lock:
            self._cursors = {k: c for k, c in self._cursors.items() if now - c.used < self.ttl}
            cur = self._cursors.get(cid)
        if cur is None or not off.isdigit():
            return actions_error(400, "INVALID_VALUE", f"invalid queryLocator {loc!r} (unknown "
                                 f"or expired after {self.ttl:g} s without use)")
        cur.used = now
        return self._page(cid, cur, int(off))

    def _page(self, cid: str, cur: Cursor, offset: int) -> Response:
        part = cur.frame.slice(offset, cur.page)
        recs = render.records(cur.query.spec, part, self.store.tz, "zoql")
        out: dict[str, Any] = {"records": recs, "size": len(recs)}
        nxt = offset + part.height
        if nxt < cur.frame.height:
            with self._lock:
                self._cursors[cid] = cur
            out["queryLocator"] = f"{cid}-{nxt}"
            out["done"] = False
        else:
            with self._lock:
                self._cursors.pop(cid, None)
            out["done"] = True
        return json_response(out)
