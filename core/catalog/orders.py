"""How the Zuora-derived columns of a local ``orders`` row follow from Zuora (L5, D14).

Declared once as DuckDB SQL over the typed Zuora relations (named by Zuora object) and the
local ``billing_accounts`` table: the reconciler compares orders against it and the repair job
sets orders from it. The generator and the tests' oracle deliberately do not use it (issue 13:
ground truth independent of the code it checks); hand-valued tests in
``tests/reconcile/test_ground_truth_orders.py`` pin each column.
"""

from __future__ import annotations

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
LATEST_SQL = f"""
SELECT {", ".join(LATEST_COLUMNS)} FROM Subscription
QUALIFY row_number() OVER (PARTITION BY Name ORDER BY Version DESC, UpdatedDate DESC) = 1
"""


def derived_orders_sql(statuses: tuple[str, ...] | None = PAID_STATUSES) -> str:
    """The derivation for names whose latest version has one of ``statuses`` (``None``: every
    name). Only paid names have orders; the reconciler compares an
    existing order against the derivation whatever its subscription's status."""
    where = "" if statuses is None else (
        "WHERE l.Status IN (" + ", ".join(f"'{s}'" for s in statuses) + ")")
    return _DERIVED_TEMPLATE.replace("{where}", where)


_DERIVED_TEMPLATE = f"""
WITH latest AS ({LATEST_SQL}),
base AS (
    SELECT rp.SubscriptionId, rp.Id AS rate_plan_id, rp.ProductRatePlanId, rp.AmendmentType
    FROM RatePlan rp
    JOIN ProductRatePlan prp ON prp.Id = rp.ProductRatePlanId
    JOIN Product p ON p.Id = prp.ProductId
    WHERE p.Category = 'Base Products'
    QUALIFY row_number() OVER (PARTITION BY rp.SubscriptionId ORDER BY rp.Id) = 1
),
seats AS (
    SELECT RatePlanId, Quantity FROM RatePlanCharge
    WHERE IsLastSegment AND ChargeModel = 'Per Unit Pricing'
    QUALIFY row_number() OVER (PARTITION BY RatePlanId ORDER BY ChargeNumber) = 1
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
LEFT JOIN billing_accounts ba ON ba.zuora_account_id = l.AccountId
{{where}}
"""
DERIVED_ORDERS_SQL = derived_orders_sql()
