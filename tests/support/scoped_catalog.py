"""A tiny hand-made product catalog for the catalog-scope tests (seed 004), written with
literal rows into a local database, and the plan lists each scope must give, written by hand
from the rows (never computed by the code under test).

The end date that matters: ``prp_smp_old`` ends and ``prp_smu_future`` starts on
:data:`EDGE` (2026-07-01), so ``active`` on :data:`BEFORE` (2026-06-30) and on ``EDGE`` differ
by exactly those two plans.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from core.localdb import writer

D = dt.date
BEFORE, EDGE = D(2026, 6, 30), D(2026, 7, 1)
FAR = D(2099, 12, 31)
STAMP = dt.datetime(2026, 1, 1, 12)

# (Id, Name, Category, Tier__c, DeploymentType__c): multiselects as people type them
PRODUCTS = [
    ("prod_sm_prem", "Premium SM", "Base Products", "premium", "self_managed"),
    ("prod_sm_ult", "Ultimate SM", "Base Products", "Ultimate ", " self_managed"),
    ("prod_saas_prem", "Premium SaaS", "Base Products", "premium", "gitlab_dot_com"),
    ("prod_ded", "Dedicated", "Base Products", "ultimate", "dedicated"),
    ("prod_storage", "Storage", "Add On Services", "premium; ultimate", "gitlab_dot_com"),
    ("prod_duo", "Duo Enterprise", "Add On Services", "ultimate",
     "self_managed;gitlab_dot_com;dedicated"),
    ("prod_misc", "Support", "Miscellaneous Products", None, None),
    # contradicting: a base product with two tiers
    ("prod_two", "Two Tiers", "Base Products", "premium;ultimate", "self_managed"),
    # missing: no Category
    ("prod_nocat", "No Category", None, "premium", "self_managed"),
]
# (Id, ProductId, Name, WebDirect__c, EffectiveStartDate, EffectiveEndDate)
PLANS = [
    ("prp_smp_1y", "prod_sm_prem", "Premium SM 1y", True, D(2020, 1, 1), FAR),
    ("prp_smp_old", "prod_sm_prem", "Premium SM legacy", False, D(2020, 1, 1), EDGE),
    ("prp_smu_1y", "prod_sm_ult", "Ultimate SM 1y", True, D(2020, 1, 1), FAR),
    ("prp_smu_future", "prod_sm_ult", "Ultimate SM 2027", False, EDGE, FAR),
    ("prp_saas_prem", "prod_saas_prem", "Premium SaaS 1y", True, D(2020, 1, 1), FAR),
    ("prp_ded", "prod_ded", "Dedicated 1y", False, D(2020, 1, 1), FAR),
    ("prp_storage", "prod_storage", "Storage 10 GB", True, D(2020, 1, 1), FAR),
    ("prp_duo", "prod_duo", "Duo Enterprise 1y", False, D(2020, 1, 1), FAR),
    ("prp_support", "prod_misc", "Premium support", None, D(2020, 1, 1), FAR),
    ("prp_two", "prod_two", "Two Tiers 1y", True, D(2020, 1, 1), FAR),
    ("prp_nocat", "prod_nocat", "No Category 1y", True, D(2020, 1, 1), FAR),
    ("prp_orphan", "prod_gone", "Orphan 1y", True, D(2020, 1, 1), FAR),
    ("prp_retired", "prod_nocat", "Retired", True, D(2019, 1, 1), D(2021, 1, 1)),
]

# each scope, by hand from the rows above (every plan, whatever its dates)
EXPECTED = {
    "self_managed": {"prp_smp_1y", "prp_smp_old", "prp_smu_1y", "prp_smu_future", "prp_duo",
                     "prp_two", "prp_nocat", "prp_retired"},
    "dedicated": {"prp_ded", "prp_duo"},
    "gitlab_dot_com": {"prp_saas_prem", "prp_storage", "prp_duo"},
    "base_products": {"prp_smp_1y", "prp_smp_old", "prp_smu_1y", "prp_smu_future",
                      "prp_saas_prem", "prp_ded", "prp_two"},
    "add_ons": {"prp_storage", "prp_duo"},
    "web_direct": {"prp_smp_1y", "prp_smu_1y", "prp_saas_prem", "prp_storage", "prp_two",
                   "prp_nocat", "prp_orphan", "prp_retired"},
    # prp_support's WebDirect__c is NULL: neither web_direct nor sales_assisted
    "sales_assisted": {"prp_smp_old", "prp_smu_future", "prp_ded", "prp_duo"},
    "ultimate": {"prp_smu_1y", "prp_smu_future", "prp_ded", "prp_storage", "prp_duo",
                 "prp_two"},
    "premium": {"prp_smp_1y", "prp_smp_old", "prp_saas_prem", "prp_storage", "prp_two",
                "prp_nocat", "prp_retired"},
}
ALL = {p[0] for p in PLANS}
# active: EffectiveStartDate <= D < EffectiveEndDate
ACTIVE = {BEFORE: ALL - {"prp_smu_future", "prp_retired"},
          EDGE: ALL - {"prp_smp_old", "prp_retired"}}
# plans current on BEFORE (not retired) that cannot be classified, with the D22 reasons
UNCLASSIFIED = {
    "prp_support": "plan WebDirect__c is empty",
    "prp_two": "a base product must have exactly one tier and one deployment type",
    "prp_nocat": "product Category is empty",
    "prp_orphan": "its product is not in the catalog",
}


def _audit(n: int) -> dict[str, list]:
    return {"created_by_id": ["u1"] * n, "created_date": [STAMP] * n,
            "updated_by_id": ["u1"] * n, "updated_date": [STAMP] * n}


def write_catalog(db) -> None:
    """The rows above into ``db``'s catalog cache (schema already created), as an outside
    writer through the hatch (the cache is guarded on PostgreSQL)."""
    prod = pl.DataFrame({
        "zuora_id": [p[0] for p in PRODUCTS], "name": [p[1] for p in PRODUCTS],
        "sku": [f"SKU-{i}" for i in range(len(PRODUCTS))],
        "category": [p[2] for p in PRODUCTS], "tier__c": [p[3] for p in PRODUCTS],
        "deployment_type__c": [p[4] for p in PRODUCTS],
        "effective_start_date": [D(2017, 1, 1)] * len(PRODUCTS),
        "effective_end_date": [FAR] * len(PRODUCTS), **_audit(len(PRODUCTS))},
        schema_overrides={"category": pl.String, "tier__c": pl.String,
                          "deployment_type__c": pl.String})
    plans = pl.DataFrame({
        "zuora_id": [p[0] for p in PLANS], "product_id": [p[1] for p in PLANS],
        "name": [p[2] for p in PLANS], "web_direct__c": [p[3] for p in PLANS],
        "effective_start_date": [p[4] for p in PLANS],
        "effective_end_date": [p[5] for p in PLANS], **_audit(len(PLANS))})
    with db.transaction():
        writer.mark(db, "hatch", "test-catalog-scopes")
        db.load("zuora_local_products", prod)
        db.load("zuora_local_product_rate_plans", plans)
