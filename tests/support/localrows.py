"""Literal local rows for tests: a dummy in every NOT NULL column a test leaves out, loaded
as an outside writer would (through the escape hatch on PostgreSQL, in one transaction)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import polars as pl

from core.localdb.connect import LocalDB
from core.localdb.schema import table_columns
from core.localdb.writer import mark

D = dt.date
T = dt.datetime
_VARCHAR = re.compile(r"VARCHAR\((\d+)\)")


def filled(table: str, rows: list[dict[str, Any]]) -> pl.DataFrame:
    """``rows`` with a dummy value in every NOT NULL column they leave out."""
    dummies: dict[str, Any] = {}
    for c in table_columns(table):
        if c.nullable:
            continue
        t = c.local_type
        dummies[c.name] = (f"{c.name}-x"[: int(m.group(1))] if (m := _VARCHAR.fullmatch(t))
                           else 1 if t in ("INTEGER", "BIGINT") else False if t == "BOOLEAN"
                           else D(2024, 1, 1) if t == "DATE" else T(2024, 1, 1, 12))
    full = [{**dummies, **r} for r in rows]
    keys = sorted({k for r in full for k in r})
    return pl.DataFrame([{k: r.get(k) for k in keys} for r in full], infer_schema_length=None)


def load_local(db: LocalDB, tables: dict[str, list[dict[str, Any]]]) -> None:
    """Create the schema and write ``tables`` as an outside writer would (through the
    escape hatch on PostgreSQL, in one transaction)."""
    db.init_schema()
    with db.transaction():
        mark(db, "hatch", "test")
        for table, rows in tables.items():
            db.load(table, filled(table, rows))
