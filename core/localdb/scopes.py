"""Catalog scopes on the local database: the view ``recon db init`` creates, and the Python
API behind ``recon catalog plans``.

The classification itself is declared once in :mod:`core.catalog.scopes` (and read there by
rule D22 too); this module only puts it where the application reads it:

* the view ``catalog_plan_scopes`` (PostgreSQL and DuckDB, one SQL text): one row per cached
  product rate plan with its category, tier and deployment values, WebDirect__c, effective
  dates, one boolean column per scope and ``problems`` (NULL when the plan can be
  classified). ``active`` depends on a date, so it is not a column: filter
  ``effective_start_date <= D AND D < effective_end_date`` with D the tenant zone's date;
* :func:`plans`: the plans in a conjunction of scopes, as of a date, beside the plans the
  catalog cannot classify (the D22 reasons), from the local cache.

``today`` is the date in the tenant's zone (``zuora.tenant_tz``), never the server's: a plan
that ends at midnight in Los Angeles is still active there at 03:00 UTC.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl

from core.catalog.scopes import (
    LOCAL,
    NAMES,
    Scope,
    Scopes,
    current_sql,
    plan_classification_sql,
    problems_sql,
    scopes,
)
from core.errors import ConfigError, LocalDatabaseError
from core.localdb import views

VIEW = views.CATALOG_PLAN_SCOPES  # created by `recon db init` (core.localdb.views)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def tenant_today(tenant_tz: str, clock: Callable[[], dt.datetime] = utc_now) -> dt.date:
    """Today's date in the tenant's zone (``clock`` returns an aware instant; tests pass a
    fixed one)."""
    return clock().astimezone(ZoneInfo(tenant_tz)).date()


@dataclass(frozen=True)
class PlanListing:
    """What :func:`plans` found. ``plans``: the plans in every scope asked for (all plans for
    none), one row each with the view's columns. ``unclassified``: the plans current on
    ``as_of`` (not retired: D22's test) whose classification is missing or contradicts their
    product, with ``problems`` — listed whatever the scopes, since their scopes cannot be
    told; each is a D22 finding at the next reconcile."""

    as_of: dt.date
    scopes: tuple[str, ...]
    plans: pl.DataFrame
    unclassified: pl.DataFrame

    @property
    def ids(self) -> list[str]:
        return self.plans["plan_id"].to_list()


def plans(db: Any, *wanted: str | Scope | Scopes, as_of: dt.date | None = None,
          tenant_tz: str | None = None,
          clock: Callable[[], dt.datetime] = utc_now) -> PlanListing:
    """The cached product rate plans in all of ``wanted`` (scope names as in seed 004, or
    :class:`Scope` objects composed with ``&``), e.g. ``plans(db, "self_managed", "premium",
    "active", tenant_tz="America/Los_Angeles")``. ``as_of`` defaults to today in
    ``tenant_tz`` (one of the two must be given, else ``ConfigError``). An unknown scope is a
    ``CatalogError`` naming the known ones. Sorted by product name, plan name, plan id."""
    chosen = scopes(*wanted)
    for table in (LOCAL.plans, LOCAL.products):
        if not db.fetch(db.dialect.table_exists_sql, [table])[0][0]:
            raise LocalDatabaseError(
                f"the local database has no catalog cache table {table}: create the schema "
                "with `recon db init` and fill the cache (`recon sync catalog`)")
    if as_of is None:
        if tenant_tz is None:
            raise ConfigError("catalog scopes need a date: give as_of, or tenant_tz "
                              "(zuora.tenant_tz) so that today is the tenant's date")
        as_of = tenant_today(tenant_tz, clock)
    found = _sorted(db.query(plan_classification_sql(LOCAL, chosen.sql(LOCAL, as_of))))
    day = f"DATE '{as_of.isoformat()}'"
    odd = _sorted(db.query(plan_classification_sql(
        LOCAL, f"{current_sql(LOCAL, day)} AND {problems_sql(LOCAL)} IS NOT NULL")))
    return PlanListing(as_of, chosen.names, found, odd.select(UNCLASSIFIED_COLUMNS))


# what the listing of plans that cannot be classified shows
UNCLASSIFIED_COLUMNS = ("plan_id", "plan_name", "product_id", "product_name",
                        "effective_start_date", "effective_end_date", "problems")


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    """By product name, plan name, plan id — sorted here, not in SQL, so both databases give
    one order whatever PostgreSQL's collation."""
    return frame.sort(["product_name", "plan_name", "plan_id"], nulls_last=True)


def plan_ids(db: Any, *wanted: str | Scope | Scopes, as_of: dt.date | None = None,
             tenant_tz: str | None = None,
             clock: Callable[[], dt.datetime] = utc_now) -> list[str]:
    """Only the ids (what seed 004 replaces ``Plan`` constants with, e.g.
    ``ALL_ULTIMATE_SM_PLANS`` = ``plan_ids(db, "self_managed", "ultimate")``)."""
    return plans(db, *wanted, as_of=as_of, tenant_tz=tenant_tz, clock=clock).ids


__all__ = ["NAMES", "VIEW", "PlanListing", "plan_ids", "plans",
           "tenant_today"]
