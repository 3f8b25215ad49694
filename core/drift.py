"""The drift catalogue D01–D26 (domain.md §5), declared once.

Three floors speak of the same drifts: the reconciler attributes a finding to one
(``drift_id``), the report shows its title to people who never read domain.md, and the sandbox
injects each one into a generated tenant as ground truth. The ids and titles used to be written
out twice in different words (the report's title table and the sandbox's scenario list); they
live here now and both read them, so a drift added or renamed changes one place.

``group`` is the family of objects the drift concerns, which is also how the sandbox files its
scenarios (``sandbox.generate.drift.<group>``) and how the catalogue groups objects.
``reported`` is False for D26 alone: a representation-only difference the reconciler must
normalise away, never report.
"""

from __future__ import annotations

from dataclasses import dataclass

GROUPS = ("subscriptions", "orders", "accounts", "catalog", "normalisation")


@dataclass(frozen=True)
class Drift:
    id: str  # D01 … D26
    title: str  # what people read next to the id
    group: str  # one of GROUPS
    reported: bool = True  # False: must NOT become a finding (D26)


CATALOGUE: tuple[Drift, ...] = (
    Drift("D01", "Missing local subscription version", "subscriptions"),
    Drift("D02", "Order / latest pointer on an older version", "orders"),
    Drift("D03", "Local orphan version (deleted or rolled back in Zuora)", "subscriptions"),
    Drift("D04", "Field drift on a version (custom fields changed outside an order)",
          "subscriptions"),
    Drift("D05", "Date off by one day (time zone)", "subscriptions"),
    Drift("D06", "Decimal / rounding drift", "subscriptions"),
    Drift("D07", "Status drift (e.g. a missed cancellation)", "subscriptions"),
    Drift("D08", "Segment / tier corruption in the local copy", "subscriptions"),
    Drift("D09", "Zero or several local latest versions", "subscriptions"),
    Drift("D10", "Subscription moved to another billing account", "orders"),
    Drift("D11", "Duplicate local orders for one subscription name", "orders"),
    Drift("D12", "Several active subscriptions on one namespace", "orders"),
    Drift("D13", "Paid Zuora subscription without a local order", "orders"),
    Drift("D14", "Order with nil or stale Zuora-derived columns", "orders"),
    Drift("D15", "Local order references a subscription unknown to Zuora", "orders"),
    Drift("D16", "Billing account missing locally", "accounts"),
    Drift("D17", "Local billing account orphan", "accounts"),
    Drift("D18", "Bill-To / Sold-To reference drift", "accounts"),
    Drift("D19", "Contact detail / e-mail drift", "accounts"),
    Drift("D20", "User linked to the wrong billing account via e-mail", "accounts"),
    Drift("D21", "Account field / status drift", "accounts"),
    Drift("D22", "Product catalog drift", "catalog"),
    Drift("D23", "Catalog row retired in Zuora but referenced locally", "catalog"),
    Drift("D24", "Subscription owner vs invoice owner confusion", "orders"),
    Drift("D25", "Namespace name / id metadata drift", "orders"),
    Drift("D26", "Normalisation-only difference (not drift)", "normalisation", reported=False),
)

BY_ID: dict[str, Drift] = {d.id: d for d in CATALOGUE}
TITLES: dict[str, str] = {d.id: d.title for d in CATALOGUE}
# the drifts a finding may carry (and the sandbox injects as named scenarios): D01…D25
REPORTED_IDS: tuple[str, ...] = tuple(d.id for d in CATALOGUE if d.reported)


def title(drift_id: str | None) -> str:
    """The drift's title, "" for an unknown or missing id (a report never fails on one)."""
    return TITLES.get(drift_id or "", "")
