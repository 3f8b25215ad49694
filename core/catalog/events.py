"""Zuora's callouts as recon reads them, declared once: the event kinds (their default receiver
paths and where each kind's keys are in the payload) and, for each object a targeted sync takes,
which findings a sync of one key covers.

Read by the receiver (paths, payload keys), by the reconciler (a key synced after the snapshot,
or with an event still inside the grace window, is ``pending``; "missed callouts"), by the sync
(findings restricted to the key's subtree) and by the report. Everything here is about the
catalogue's objects, so it lives with the catalogue."""

from __future__ import annotations

from dataclasses import dataclass

from core.catalog.objects import OBJECTS
from core.errors import CatalogError


@dataclass(frozen=True)
class EventKind:
    """One kind of callout: the path it is posted to by default, and per sync object the
    payload field holding its key(s) (a string, a list of strings or a comma-separated
    string). ``whole`` names a sync object synced whole whatever the payload says (the
    catalog: seed 004 debounces one catalog sync, not one per product)."""

    name: str
    path: str
    keys: tuple[tuple[str, str], ...] = ()  # (sync object, payload field)
    whole: str | None = None
    description: str = ""

    @property
    def objects(self) -> tuple[str, ...]:
        """The sync objects an event of this kind asks for."""
        return tuple(o for o, _ in self.keys) + ((self.whole,) if self.whole else ())


WHOLE_CATALOG = "*"  # the key of a whole-catalog sync

EVENT_KINDS: tuple[EventKind, ...] = (
    EventKind("contact", "/callouts/contact", (("contact", "ContactId"),),
              description="a Contact inserted or updated (custom event on Contact)"),
    EventKind("account", "/callouts/account", (("account", "AccountId"),),
              description="an Account inserted or updated, BillToId/SoldToId included "
              "(custom event on Account)"),
    EventKind("subscription", "/callouts/subscription", (("subscription", "SubscriptionName"),),
              description="a Subscription's custom fields changed outside an order (custom "
              "event on Subscription)"),
    EventKind("order_processed", "/callouts/order-processed",
              (("subscription", "SubscriptionNames"), ("account", "AccountIds")),
              description="Order Processed (standard event): new subscription versions"),
    EventKind("catalog", "/callouts/catalog", whole="catalog",
              description="a Product, ProductRatePlan, ProductRatePlanCharge or "
              "ProductRatePlanChargeTier inserted, updated or deleted (custom events)"),
)
EVENT_KIND_NAMES: tuple[str, ...] = tuple(k.name for k in EVENT_KINDS)


def _objects(group: str) -> tuple[str, ...]:
    return tuple(o.name for o in OBJECTS if o.group == group)


def _in(names: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{n}'" for n in names) + ")"


# For each sync object: the SQL (over a finding row aliased ``f``, columns of
# reconcile.findings) giving the key a sync of that object would cover the finding by, NULL
# when no such sync covers it. A finding may be covered by several (a Contact finding by the
# contact's own sync and by its account's).
SUBSCRIPTION_OBJECTS = (*_objects("subscriptions"), "orders")
ACCOUNT_OBJECTS = ("Account", "Contact", "customers", "billing_account_memberships")
CATALOG_OBJECTS = _objects("catalog")
SYNC_SCOPES: dict[str, str] = {
    "subscription": f"CASE WHEN f.object IN {_in(SUBSCRIPTION_OBJECTS)} "
                    "THEN f.subscription_name END",
    "account": f"CASE WHEN f.object IN {_in(ACCOUNT_OBJECTS)} THEN f.account_id END",
    "contact": "CASE WHEN f.object = 'Contact' THEN f.key END",
    "catalog": f"CASE WHEN f.object IN {_in(CATALOG_OBJECTS)} THEN '{WHOLE_CATALOG}' END",
}


def event_kind(name: str) -> EventKind:
    """The event kind called ``name``."""
    for k in EVENT_KINDS:
        if k.name == name:
            return k
    raise CatalogError(f"unknown callout event kind {name!r}; recon knows "
                       f"{', '.join(EVENT_KIND_NAMES)}")
