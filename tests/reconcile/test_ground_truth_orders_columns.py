"""The derivation's column list is the catalogue's: every ``orders`` column the catalogue
declares as derived from Zuora (``Owner.DERIVED``, core/catalog/objects.py, "declare once")
is one the derivation produces and the tests' oracles compare (``DERIVED_COLUMNS``), and no
other: a derived column left out would never be compared nor repaired."""

from __future__ import annotations

from core.catalog import Owner
from core.catalog.objects import ORDERS
from core.catalog.orders import DERIVED_COLUMNS, DERIVED_ORDERS_SQL


def test_derived_columns_are_the_catalogues() -> None:
    declared = {c.name for c in ORDERS.columns if c.owner is Owner.DERIVED}
    assert len(DERIVED_COLUMNS) == len(set(DERIVED_COLUMNS))
    assert set(DERIVED_COLUMNS) == declared
    assert all(f" AS {c}," in DERIVED_ORDERS_SQL or f" AS {c}\n" in DERIVED_ORDERS_SQL
               for c in declared)
