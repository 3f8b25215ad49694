"""Views recon creates in the local database: a registry of (name, SQL) rendered per dialect.

``recon db init`` creates every registered view after the tables (``CREATE OR REPLACE VIEW``,
so re-running it brings a view up to date); ``recon db init --print`` shows them. A view's
SQL is a function of the dialect so that one declaration serves both databases; prefer
portable SQL and branch only where the engines truly differ. Another part of recon adds its
views by appending a :class:`View` to :data:`VIEWS` (or calling :func:`register`).

Views are read paths for the application and for people; recon's own reconciliation never
reads them (it reads the snapshot), so a view can never hide drift.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from core.catalog.orders import ORDERS_CURRENT, orders_current_sql
from core.catalog.scopes import LOCAL as CATALOG_LOCAL
from core.catalog.scopes import plan_classification_sql
from core.localdb.dialect import Dialect


@dataclass(frozen=True)
class View:
    """One view: its name, its SELECT for a dialect, and what it is for (README)."""

    name: str
    sql: Callable[[Dialect], str]
    doc: str = ""


CATALOG_PLAN_SCOPES = "catalog_plan_scopes"

VIEWS: list[View] = [
    View(ORDERS_CURRENT, lambda dialect: orders_current_sql(),
         doc="orders with every Zuora-derived column read from the latest local subscription "
             "version (orders delegated, seed 003 phase 4)"),
    # one portable text for both dialects (core.catalog.scopes writes only portable SQL)
    View(CATALOG_PLAN_SCOPES, lambda dialect: plan_classification_sql(CATALOG_LOCAL),
         doc="each product rate plan classified by the catalog scopes of seed 004 "
             "(core.catalog.scopes; `recon catalog plans`)"),
]


def register(view: View) -> View:
    """Add ``view`` to the registry (a name registered twice is a programming error)."""
    if any(v.name == view.name for v in VIEWS):
        raise ValueError(f"view {view.name} is registered twice")
    VIEWS.append(view)
    return view


def ddl(dialect: Dialect | str) -> list[str]:
    """The statements that create or update every registered view (idempotent)."""
    d = Dialect.named(str(dialect))
    return [f"CREATE OR REPLACE VIEW {v.name} AS\n{v.sql(d)}" for v in VIEWS]
