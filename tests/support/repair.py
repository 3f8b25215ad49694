"""Helpers for the repair executor tests: small local databases, hand-written plans, dumps."""

from __future__ import annotations

import datetime as dt
import json
import os
import select
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from core.config import Settings
from core.localdb import schema
from core.localdb.connect import connect
from repair.plan import to_json

REPO = Path(__file__).resolve().parents[2]
ACCOUNTS = 40
SEED = 5
# the tables a test database holds (the subscription subtree is not needed here)
TABLES = ("zuora_local_products", "zuora_local_product_rate_plans",
          "zuora_local_product_rate_plan_charges", "zuora_local_product_rate_plan_charge_tiers",
          "billing_accounts", "billing_account_contacts", "customers",
          "billing_account_memberships", "orders")


BACKENDS = ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)]


def backend_url(request: pytest.FixtureRequest) -> str:
    """For a fixture parametrized with :data:`BACKENDS`: a fresh local database (DuckDB file
    or private PostgreSQL schema from conftest) holding a small generated world."""
    u = request.getfixturevalue("pg_url" if request.param == "postgres" else "duckdb_url")
    make_db(u)
    return u


def utc_iso(hours_ago: float = 0.0) -> str:
    t = dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours_ago)
    return t.replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def world_tables() -> dict[str, pl.DataFrame]:
    from tests.support.worlds import fresh_world

    local = fresh_world(ACCOUNTS, SEED).local
    return {t: local[t] for t in TABLES}


def make_db(url: str, tables: dict[str, pl.DataFrame] | None = None) -> dict[str, int]:
    """Create the local schema at ``url`` (stamped: it has an identity) and load a small
    generated world; row counts."""
    tables = world_tables() if tables is None else tables
    with connect(url) as db:
        db.init_schema()
        with db.writing("load", "tests"):  # the loader of a database recon manages
            counts = {t: db.load(t, df) for t, df in tables.items()}
        db.reset_identities()
    return counts


def settings_for(url: str, data_dir: Path, **kw: Any) -> Settings:
    base = Settings(local_database_url=url, data_dir=data_dir, repair_max_change_fraction=1.0)
    return replace(base, **kw)


def rows(url: str, sql: str) -> list[tuple]:
    with connect(url) as db:
        if db.dialect == "postgres":
            with db.raw.cursor() as cur:
                cur.execute(sql)
                return cur.fetchall()
        return db.raw.execute(sql).fetchall()


def one(url: str, sql: str) -> Any:
    return rows(url, sql)[0][0]


def dump(url: str, tables: list[str] | None = None) -> dict[str, list[tuple]]:
    """Every row of every catalogue table (sorted), to compare whole databases."""
    out = {}
    with connect(url) as db:
        for t in tables or TABLES:
            cols = [c.name for c in schema.table_columns(t)]
            sql = f"SELECT {', '.join(cols)} FROM {t}"
            if db.dialect == "postgres":
                with db.raw.cursor() as cur:
                    cur.execute(sql)
                    data = cur.fetchall()
            else:
                data = db.raw.execute(sql).fetchall()
            out[t] = sorted(data, key=lambda r: tuple((v is None, str(v)) for v in r))
    return out


def row_json(url: str, table: str, where: str) -> dict[str, Any]:
    """One row as plan JSON values (for ``before`` images)."""
    cols = [c.name for c in schema.table_columns(table)]
    r = rows(url, f"SELECT {', '.join(cols)} FROM {table} WHERE {where}")
    assert len(r) == 1, (table, where, r)
    return {c: to_json(v) for c, v in zip(cols, r[0], strict=True)}


# -- plans -----------------------------------------------------------------------------------
def op(seq: int, table: str, kind: str, key: dict, before: dict | None = None,
       after: dict | None = None, group: str | None = None, step: str = "accounts") -> dict:
    return {"seq": seq, "step": step, "group": group or f"g{seq}", "table": table, "op": kind,
            "key": key, "before": before, "after": after, "reason": "test",
            "findings": [f"fp{seq}"]}


def ref(table: str, match: dict, column: str = "id") -> dict:
    return {"$ref": {"table": table, "match": match, "column": column}}


def identity_of(url: str) -> dict | None:
    """The identity of the database at ``url`` as a plan carries it (None: unstamped)."""
    from core.localdb.identity import read_identity

    with connect(url) as db:
        ident = read_identity(db)
    return ident.as_dict() if ident else None


def plan_doc(ops: list[dict], **kw: Any) -> dict:
    """A plan document with its operations inline: version 2, the last such format, which
    apply still takes (``repair.plan.write_plan`` writes version 3's chunk files)."""
    doc = {"schema_version": 2, "plan_id": "plan-test", "run_id": "run-test",
           "created_at": utc_iso(), "snapshot_complete": True, "validation": "passed",
           "local_database": "test", "local_identity": None, "operations": ops,
           "needs_a_person": [], "summary": {}}
    doc.update(kw)
    return doc


def write_plan(target: str, path: Path, ops: list[dict], **kw: Any) -> Path:
    """A plan for the database at ``target`` (its identity, as a snapshot would give it)."""
    kw.setdefault("local_identity", identity_of(target))
    path.write_text(json.dumps(plan_doc(ops, **kw), indent=1))
    return path


def account_updates(url: str, n: int, start_seq: int = 1, per_group: int = 1,
                    suffix: str = " (fixed)") -> list[dict]:
    """Update ops renaming the first ``n`` billing accounts (by id)."""
    accts = rows(url, f"SELECT zuora_account_id, zuora_account_name FROM billing_accounts "
                      f"ORDER BY id LIMIT {n}")
    return [op(start_seq + i, "billing_accounts", "update", {"zuora_account_id": zid},
               {"zuora_account_name": name}, {"zuora_account_name": (name + suffix)[:255]},
               group=f"g{i // per_group}")
            for i, (zid, name) in enumerate(accts)]


# -- processes -------------------------------------------------------------------------------
def spawn(code: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``python -c code`` in the repo, stdout and stderr piped (text)."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("RECON_")}
    e.update(env or {})
    e["PYTHONPATH"] = str(REPO)
    return subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=e, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_line(proc: subprocess.Popen, stream: str, needle: str,
                  timeout: float = 60.0) -> list[str]:
    """Read ``stream`` ("stdout"/"stderr") of ``proc`` until a line contains ``needle``."""
    f = getattr(proc, stream)
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([f], [], [], 0.2)
        if ready:
            line = f.readline()
            if not line:
                break
            seen.append(line.rstrip())
            if needle in line:
                return seen
        elif proc.poll() is not None:
            break
    rest = proc.stderr.read() if proc.poll() is not None and stream != "stderr" else ""
    raise AssertionError(f"{needle!r} never appeared; got {seen} {rest}")


def retry_locked(fn: Any, timeout: float = 15.0) -> Any:
    """Call ``fn`` until it does not raise LockHeld (a killed PostgreSQL session may take a
    moment to be reaped by the server)."""
    from repair.guards import LockHeld

    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except LockHeld:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
