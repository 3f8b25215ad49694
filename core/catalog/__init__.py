"""The object catalogue: one declaration of every reconciled object, read by every floor."""

from core.catalog.model import Column, Field, LocalTable, Norm, ObjectSpec, Owner, Ref, ZType
from core.catalog.objects import LOCAL_TABLES, OBJECTS, ORDER_METADATA
from core.errors import CatalogError

BY_NAME = {o.name: o for o in OBJECTS}
BY_TABLE = {o.table: o for o in OBJECTS}
LOCAL_BY_NAME = {t.name: t for t in LOCAL_TABLES}


def get(name: str) -> ObjectSpec:
    """The object called ``name`` (Zuora name or local table name)."""
    spec = BY_NAME.get(name) or BY_TABLE.get(name)
    if spec is None:
        raise CatalogError(
            f"unknown object {name!r}; the catalogue declares: {', '.join(BY_NAME)}"
        )
    return spec


__all__ = [
    "BY_NAME", "BY_TABLE", "LOCAL_BY_NAME", "LOCAL_TABLES", "OBJECTS", "ORDER_METADATA",
    "Column", "Field", "LocalTable", "Norm", "ObjectSpec", "Owner", "Ref", "ZType", "get",
]
