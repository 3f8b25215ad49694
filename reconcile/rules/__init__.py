"""Cross-object rules (domain.md §5), each a named DuckDB query producing findings."""

import duckdb

from reconcile.rules import accounts, catalog, orders, subscriptions
from reconcile.rules.base import Rule, prepare, reads_order_relations

RULES: list[Rule] = [*subscriptions.RULES, *orders.RULES, *accounts.RULES, *catalog.RULES]
CATALOG_RULES: list[Rule] = list(catalog.RULES)  # what a catalog-only snapshot can check
PREPARE_SQL = [orders.PREPARE]


def prepare_rules(con: duckdb.DuckDBPyConnection, as_of: str, scope: str = "all", *,
                  orders: bool = True) -> tuple[str, str, bool]:
    """Every helper relation the rules and the repair steps read (:func:`prepare`, then
    ``PREPARE_SQL``); ``orders=False``: none of the order derivation's
    (:data:`~reconcile.rules.base.ORDER_RELATIONS`). Returns what was built, as
    ``SnapshotDB.prepared`` records it."""
    full = orders and scope == "all"
    prepare(con, as_of, scope, orders=full)
    for sql in PREPARE_SQL if full else ():
        con.execute(sql)
    return (as_of, scope, full)


__all__ = ["CATALOG_RULES", "PREPARE_SQL", "RULES", "Rule", "prepare", "prepare_rules",
           "reads_order_relations"]
