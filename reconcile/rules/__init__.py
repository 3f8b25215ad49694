"""Cross-object rules (domain.md §5), each a named DuckDB query producing findings."""

from reconcile.rules import accounts, catalog, orders, subscriptions
from reconcile.rules.base import Rule, prepare

RULES: list[Rule] = [*subscriptions.RULES, *orders.RULES, *accounts.RULES, *catalog.RULES]
CATALOG_RULES: list[Rule] = list(catalog.RULES)  # what a catalog-only snapshot can check
PREPARE_SQL = [orders.PREPARE]

__all__ = ["CATALOG_RULES", "PREPARE_SQL", "RULES", "Rule", "prepare"]
