"""What a cross-object rule is, and the shared relations every rule reads.

A rule is a named, documented DuckDB query whose rows are findings (``reconcile.findings``
columns, by name). Its id is the drift it detects in domain.md §5 (``D02``, ``D11``, …). Rules
read the snapshot views (``zuora.*``, ``local.*``) and the helper relations built once per run
by :func:`prepare`, so each rule states only its own logic.

Helper relations (temporary tables):

==============  ===========================================================================
``run_ctx``     ``as_of`` (snapshot instant, UTC) and ``as_of_date``
``z_latest``    Zuora's latest version per subscription Name (max Version), the columns
                rules read (``core.catalog.orders.LATEST_COLUMNS``)
``z_versions``  every Zuora version: name, id, version, account_id
``l_versions``  every local version: name, id, version
``derived``     what each order's Zuora-derived columns should be (``core.catalog.orders``),
                for every name whatever its status; catalog facts fall back to the local cache
``z_names``     every subscription name Zuora knows
``referenced_plans`` product rate plans the local subscription copy uses
``nt_orders``   non-trial orders (trial orders are local-only and never checked against Zuora)
``order_names`` per subscription name: number of non-trial orders, known to Zuora or not
==============  ===========================================================================
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import duckdb

from core.catalog import get
from core.catalog.orders import LATEST_SQL, derived_orders_sql


@dataclass(frozen=True)
class Rule:
    """One cross-object rule. ``sql`` returns finding rows; ``id`` is its domain.md §5 id.
    ``about``: the objects its findings can be about (their ``object`` column), so a reconcile
    that keeps only some objects' findings (a targeted sync's) skips the rules that cannot
    produce one; ``tests/sync/test_keyed.py`` runs every rule on every drift scenario and
    holds each to its declaration. ``reads``: the objects whose diff findings (the
    ``findings`` relation) it reads, so that reconcile diffs them even when it keeps none
    of their findings; a rule whose SQL reads ``findings`` must name them (the same test)."""

    id: str
    title: str
    sql: Callable[[], str]
    about: tuple[str, ...]
    reads: tuple[str, ...] = ()
    doc: str = ""


def col(obj: str, field: str) -> str:
    """The local column of a Zuora field (rules speak the catalogue, not guessed names)."""
    column = get(obj).field(field).column
    assert column is not None, f"{obj}.{field} is not stored locally"
    return column


def email(expr: str) -> str:
    """An e-mail compared the way people are matched: trimmed, lower-case, '' = NULL."""
    return f"NULLIF(LOWER(TRIM({expr})), '')"


def ns(expr: str) -> str:
    """A namespace id compared as text, blank = NULL (custom fields may hold '')."""
    return f"NULLIF(TRIM(CAST({expr} AS VARCHAR)), '')"


# what ``prepare(orders=False)`` leaves out: the order derivation and what is built on it
ORDER_RELATIONS = ("z_latest", "l_versions", "derived", "nt_orders", "order_names",
                   "single_orders")
_ORDER_RELATION = re.compile(r"\b(" + "|".join(ORDER_RELATIONS) + r")\b")


def reads_order_relations(*sqls: str) -> bool:
    """Whether any of these queries reads a relation only ``prepare(orders=True)`` builds."""
    return any(_ORDER_RELATION.search(sql) for sql in sqls)


def prepare(con: duckdb.DuckDBPyConnection, as_of: str, scope: str = "all", *,
            orders: bool = True) -> None:
    """Build the helper relations the rules share (see module doc). ``as_of`` is an ISO UTC
    timestamp literal. A catalog-only snapshot gets only what catalog rules read.
    ``orders=False``: all but :data:`ORDER_RELATIONS` — what the annotation and the rules
    on accounts and the catalog read: a targeted sync that runs no rule and plans no step
    reading them skips the derivation, a good part of its time."""
    s = "zuora_local_subscriptions"
    con.execute(f"""CREATE OR REPLACE TEMP TABLE run_ctx AS
                    SELECT TIMESTAMP '{as_of}' AS as_of, CAST(TIMESTAMP '{as_of}' AS DATE)
                    AS as_of_date""")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE referenced_plans AS
                    SELECT DISTINCT {col('RatePlan', 'ProductRatePlanId')} AS id
                    FROM local.zuora_local_rate_plans""")
    if scope == "catalog":
        return
    con.execute("""CREATE OR REPLACE TEMP TABLE z_versions AS
                   SELECT Name AS name, Id AS id, Version AS version, AccountId AS account_id
                   FROM zuora.Subscription""")
    con.execute("""CREATE OR REPLACE TEMP TABLE z_names AS
                   SELECT DISTINCT name FROM z_versions""")
    if not orders:
        return
    con.execute(f"CREATE OR REPLACE TEMP TABLE z_latest AS {LATEST_SQL}")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE l_versions AS
                    SELECT {col('Subscription', 'Name')} AS name,
                           {col('Subscription', 'Id')} AS id,
                           {col('Subscription', 'Version')} AS version
                    FROM local.{s}""")
    # the derivation's own latest-version window then runs over one row per name
    con.execute("CREATE OR REPLACE VIEW derive.Subscription AS SELECT * FROM z_latest")
    con.execute("SET search_path = 'derive,zuora,local'")
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE derived AS {derived_orders_sql(None)}")
    finally:
        con.execute("SET search_path = 'zuora,local'")
    con.execute("""CREATE OR REPLACE TEMP TABLE nt_orders AS
                   SELECT * FROM local.orders WHERE NOT coalesce(trial, false)""")
    con.execute("""CREATE OR REPLACE TEMP TABLE order_names AS
                   SELECT o.subscription_name, count(*) AS n,
                          bool_or(z.Name IS NOT NULL) AS known
                   FROM nt_orders o
                   LEFT JOIN (SELECT DISTINCT name AS Name FROM z_versions) z
                          ON z.Name = o.subscription_name
                   WHERE o.subscription_name IS NOT NULL
                   GROUP BY o.subscription_name""")
