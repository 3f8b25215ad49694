"""How the Zuora-derived columns of a local ``orders`` row follow from Zuora (L5, D14).

Declared once, in portable SQL (no dialect-only syntax: no ``QUALIFY``, no list or JSON
functions, explicit ``NULLS LAST``), over relations named by Zuora object with Zuora's field
names. The same text runs in two places, bound to two sources:

* :data:`ZUORA` — the bare names (``Subscription``, ``RatePlan``, …, ``billing_accounts``): the
  reconciler runs it in DuckDB over a snapshot (``search_path`` resolves them to Zuora's rows,
  the catalog with the local cache's fallback, and the local billing accounts); D14 and the
  order steps of the repair compare and set orders against it;
* :data:`LOCAL` — subqueries over the local copy that rename each local column to its Zuora
  field through the catalogue: the view ``orders_current`` (:func:`orders_current_sql`, created
  by ``recon db init`` on PostgreSQL and DuckDB) reads every Zuora-derived order column from
  the latest local subscription version. An input the subscription copy does not keep on the
  row itself is taken from the catalog cache row it references (:data:`BORROWED`:
  ``RatePlanCharge.ChargeModel`` is its product rate plan charge's ``charge_model``);
  ``RatePlan.AmendmentType`` is stored (``zuora_local_rate_plans.amendment_type``, a declared
  deviation from seed 003).

The generator and the tests' oracle deliberately do not use it (issue 13: ground truth
independent of the code it checks); hand-valued tests in
``tests/reconcile/test_ground_truth_orders.py`` pin each column, and
``tests/core/test_orders_current.py`` pins the view on both databases.

Latest = max(``Version``) per ``Name``; ties (a local copy holding two rows of one version,
D09) are broken by the later ``UpdatedDate``, then the greater ``Id``, so the choice never
depends on the engine. Text orderings (``RatePlan.Id``, ``ChargeNumber``) compare Zuora's
fixed-width ids and numbers, which sort alike under any collation.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.catalog.objects import LOCAL_TABLES, OBJECTS

# Latest-version statuses that mean "paid subscription, CustomersDot has an order for it".
PAID_STATUSES = ("Active", "Cancelled", "Suspended")

DERIVED_COLUMNS = (
    "subscription_id", "zuora_account_id", "billing_account_id", "product_rate_plan_id",
    "start_date", "end_date", "quantity", "amendment_type",
)

# Only the columns derivations and rules read: a window over every column of ~1M versions
# costs seconds for nothing.
LATEST_COLUMNS = ("Id", "Name", "Version", "AccountId", "InvoiceOwnerId", "Status",
                  "TermStartDate", "TermEndDate", "CancelledDate", "GitLabNamespaceId__c",
                  "GitLabNamespaceName__c", "UpdatedDate")

# The derivation's inputs: per Zuora object, the fields it reads.
INPUTS: dict[str, tuple[str, ...]] = {
    "Subscription": LATEST_COLUMNS,
    "RatePlan": ("Id", "SubscriptionId", "ProductRatePlanId", "AmendmentType"),
    "RatePlanCharge": ("RatePlanId", "ChargeNumber", "Quantity", "IsLastSegment",
                       "ChargeModel"),
    "ProductRatePlan": ("Id", "ProductId"),
    "Product": ("Id", "Category"),
}
# Inputs the local copy does not keep on the object's own row, and where it reads them:
# (object, field) -> (the object's field referencing a catalog row, that catalog object).
# Zuora copies a charge's model from its product rate plan charge and never changes it.
BORROWED: dict[tuple[str, str], tuple[str, str]] = {
    ("RatePlanCharge", "ChargeModel"): ("ProductRatePlanChargeId", "ProductRatePlanCharge"),
}
# The local table the derivation reads besides the Zuora objects (same name on both sides).
BILLING_ACCOUNTS = "billing_accounts"


@dataclass(frozen=True)
class Source:
    """Where the derivation reads its inputs: a relation (name or parenthesised subquery)
    per Zuora object of :data:`INPUTS`, with Zuora's field names as columns."""

    name: str
    relations: dict[str, str]

    def of(self, obj: str) -> str:
        return self.relations[obj]


def _local_relation(obj: str) -> str:
    """The local copy of ``obj`` as a relation with Zuora's field names (the catalogue says
    which local column holds each field; :data:`BORROWED` where the row does not)."""
    spec = next(s for s in OBJECTS if s.name == obj)
    cols, joins = [], []
    for field in INPUTS[obj]:
        borrowed = BORROWED.get((obj, field))
        if borrowed is None:
            column = spec.field(field).column
            assert column is not None, f"{obj}.{field} is not stored locally nor borrowed"
            cols.append(f"t.{column} AS {field}")
            continue
        ref_field, ref_obj = borrowed
        ref_spec = next(s for s in OBJECTS if s.name == ref_obj)
        alias = f"b{len(joins)}"
        joins.append(f"LEFT JOIN {ref_spec.table} {alias} ON {alias}.{ref_spec.key_column} = "
                     f"t.{spec.field(ref_field).column}")
        cols.append(f"{alias}.{ref_spec.field(field).column} AS {field}")
    return (f"(SELECT {', '.join(cols)} FROM {spec.table} t"
            + "".join(f" {j}" for j in joins) + ")")


ZUORA = Source("zuora", {obj: obj for obj in INPUTS})
LOCAL = Source("local", {obj: _local_relation(obj) for obj in INPUTS})


def latest_sql(source: Source = ZUORA) -> str:
    """One row per subscription ``Name``: its latest version (max ``Version``), with the
    columns rules read (:data:`LATEST_COLUMNS`)."""
    cols = ", ".join(LATEST_COLUMNS)
    return f"""
SELECT {cols} FROM (
    SELECT {cols}, row_number() OVER (
        PARTITION BY Name ORDER BY Version DESC NULLS LAST, UpdatedDate DESC NULLS LAST,
                                   Id DESC) AS version_rank
    FROM {source.of("Subscription")} v
) ranked WHERE version_rank = 1
"""


LATEST_SQL = latest_sql()


def derived_orders_sql(statuses: tuple[str, ...] | None = PAID_STATUSES,
                       source: Source = ZUORA) -> str:
    """The derivation for names whose latest version has one of ``statuses`` (``None``: every
    name). Only paid names have orders; the reconciler compares an existing order against
    the derivation whatever its subscription's status."""
    where = "" if statuses is None else (
        "WHERE l.Status IN (" + ", ".join(f"'{s}'" for s in statuses) + ")")
    return _DERIVED_TEMPLATE.format(
        latest=latest_sql(source), where=where, ba=BILLING_ACCOUNTS,
        **{obj: source.of(obj) for obj in INPUTS})


_DERIVED_TEMPLATE = """
WITH latest AS ({latest}),
base AS (
    SELECT SubscriptionId, rate_plan_id, ProductRatePlanId, AmendmentType FROM (
        SELECT rp.SubscriptionId, rp.Id AS rate_plan_id, rp.ProductRatePlanId,
               rp.AmendmentType,
               row_number() OVER (PARTITION BY rp.SubscriptionId ORDER BY rp.Id) AS plan_rank
        FROM {RatePlan} rp
        JOIN {ProductRatePlan} prp ON prp.Id = rp.ProductRatePlanId
        JOIN {Product} p ON p.Id = prp.ProductId
        WHERE p.Category = 'Base Products'
    ) ranked_plans WHERE plan_rank = 1
),
seats AS (
    SELECT RatePlanId, Quantity FROM (
        SELECT RatePlanId, Quantity,
               row_number() OVER (PARTITION BY RatePlanId ORDER BY ChargeNumber) AS charge_rank
        FROM {RatePlanCharge} c
        WHERE IsLastSegment AND ChargeModel = 'Per Unit Pricing'
    ) ranked_charges WHERE charge_rank = 1
)
SELECT
    l.Name AS subscription_name,
    l.Id AS subscription_id,
    l.AccountId AS zuora_account_id,
    ba.id AS billing_account_id,
    b.ProductRatePlanId AS product_rate_plan_id,
    l.TermStartDate AS start_date,
    CASE WHEN l.Status = 'Cancelled' THEN l.CancelledDate ELSE l.TermEndDate END AS end_date,
    CAST(ROUND(CAST(s.Quantity AS DECIMAL(38,9))) AS INTEGER) AS quantity,
    b.AmendmentType AS amendment_type,
    l.Status AS latest_status,
    l.GitLabNamespaceId__c AS namespace_id,
    l.GitLabNamespaceName__c AS namespace_name
FROM latest l
LEFT JOIN base b ON b.SubscriptionId = l.Id
LEFT JOIN seats s ON s.RatePlanId = b.rate_plan_id
LEFT JOIN {ba} ba ON ba.zuora_account_id = l.AccountId
{where}
"""
DERIVED_ORDERS_SQL = derived_orders_sql()

ORDERS_CURRENT = "orders_current"


def orders_current_sql() -> str:
    """The view ``orders_current``: every ``orders`` row and column, with each Zuora-derived
    column (:data:`DERIVED_COLUMNS`) read from the latest local subscription version of its
    name — orders delegated to the latest version (seed 003, phase 4). ``delegated`` says
    whether they were: a trial order (local only, L10) or a name the local copy holds no
    version of keeps its own stored values. Portable SQL: the same text on both databases."""
    orders = next(t for t in LOCAL_TABLES if t.name == "orders")
    cols = []
    for c in orders.columns:
        if c.name in DERIVED_COLUMNS:
            cols.append(f"CASE WHEN d.subscription_name IS NULL THEN o.{c.name} "
                        f"ELSE d.{c.name} END AS {c.name}")
        else:
            cols.append(f"o.{c.name}")
    cols.append("d.subscription_name IS NOT NULL AS delegated")
    body = ",\n       ".join(cols)
    return (f"SELECT {body}\nFROM orders o\nLEFT JOIN ({derived_orders_sql(None, LOCAL)}) d\n"
            "  ON d.subscription_name = o.subscription_name AND NOT coalesce(o.trial, false)")
