"""The product catalog of a GitLab-like tenant (seed 004, domain.md §1.8, §6).

Declared as data: a few dozen rows, so plain Python is fine here. Classification custom fields
(Tier__c, DeploymentType__c, WebDirect__c) are set consistently with each product, prices are
exact decimals with one tier per active currency (Z16), some plans are retired, and the
Premium price rose on 2023-04-03 (subscriptions booked before keep the old price: catalog and
subscription prices legitimately differ, domain.md D22).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import polars as pl

from sandbox.generate.ids import IdFactory

CURRENCIES = ("USD", "EUR", "GBP")
FX = {"USD": Decimal("1"), "EUR": Decimal("0.92"), "GBP": Decimal("0.79")}
PRICE_CHANGE_DATE = dt.date(2023, 4, 3)
FOREVER = dt.date(2099, 12, 31)
CATALOG_START = dt.date(2017, 1, 1)


@dataclass(frozen=True)
class ChargeDef:
    name: str
    charge_type: str  # OneTime | Recurring
    charge_model: str
    annual_price: str  # USD per unit per year (Recurring) or one-time price
    uom: str | None
    old_price: str | None = None  # price before PRICE_CHANGE_DATE
    tiers: tuple[tuple[int, int | None, str], ...] = ()  # tiered: (start, end, price)


@dataclass(frozen=True)
class PlanDef:
    name: str
    term_months: int
    web_direct: bool
    charges: tuple[ChargeDef, ...]
    retired: dt.date | None = None


@dataclass(frozen=True)
class ProductDef:
    key: str
    name: str
    category: str
    tier: str | None
    deployment: str | None
    plans: tuple[PlanDef, ...]
    retired: dt.date | None = None


def _seat_plans(tier: str, label: str, price: str, old: str | None,
                retired: dt.date | None = None) -> tuple[PlanDef, ...]:
    seat = lambda years: ChargeDef(  # noqa: E731
        f"{label} - {years} Year{'s' if years > 1 else ''} - Users", "Recurring",
        "Per Unit Pricing", price, "Seats", old)
    return (
        PlanDef(f"{label} - 1 Year", 12, True, (seat(1),), retired),
        PlanDef(f"{label} - 2 Years", 24, False, (seat(2),), retired),
        PlanDef(f"{label} - 3 Years", 36, False, (seat(3),), retired),
        PlanDef(f"{label} - Monthly", 1, True, (ChargeDef(
            f"{label} - Monthly - Users", "Recurring", "Per Unit Pricing", price, "Seats",
            old),), retired or dt.date(2024, 6, 30)),
        PlanDef(f"{label} - EDU/OSS", 12, False, (ChargeDef(
            f"{label} - EDU/OSS - Users", "Recurring", "Per Unit Pricing", "0", "Seats"),),
            retired),
    )


PRODUCTS: tuple[ProductDef, ...] = (
    ProductDef("saas_premium", "GitLab Premium - SaaS", "Base Products", "premium",
               "gitlab_dot_com", _seat_plans("premium", "Premium SaaS", "348", "228")),
    ProductDef("saas_ultimate", "GitLab Ultimate - SaaS", "Base Products", "ultimate",
               "gitlab_dot_com", _seat_plans("ultimate", "Ultimate SaaS", "1188", None)),
    ProductDef("sm_premium", "GitLab Premium - Self-Managed", "Base Products", "premium",
               "self_managed", _seat_plans("premium", "Premium SM", "348", "228")),
    ProductDef("sm_ultimate", "GitLab Ultimate - Self-Managed", "Base Products", "ultimate",
               "self_managed", _seat_plans("ultimate", "Ultimate SM", "1188", None)),
    ProductDef("saas_bronze", "GitLab Bronze - SaaS", "Base Products", "bronze",
               "gitlab_dot_com", _seat_plans("bronze", "Bronze SaaS", "48", None,
                                             dt.date(2021, 1, 26)), retired=dt.date(2022, 1, 26)),
    ProductDef("sm_starter", "GitLab Starter - Self-Managed", "Base Products", "starter",
               "self_managed", _seat_plans("starter", "Starter SM", "48", None,
                                           dt.date(2021, 1, 26)), retired=dt.date(2022, 1, 26)),
    ProductDef("dedicated", "GitLab Dedicated", "Base Products", "ultimate", "dedicated", (
        PlanDef("Dedicated - 1 Year", 12, False, (
            ChargeDef("Dedicated - Administration Fee", "Recurring", "Flat Fee Pricing",
                      "120000", None),
            ChargeDef("Dedicated - Users", "Recurring", "Per Unit Pricing", "1188", "Seats"),
        )),
    )),
    ProductDef("storage", "Storage", "Add On Services", "premium;ultimate", "gitlab_dot_com", (
        PlanDef("10GB Storage Pack - 1 Year", 12, True, (
            ChargeDef("10GB Storage Pack", "Recurring", "Per Unit Pricing", "60", "Packs"),)),
    )),
    ProductDef("compute", "Compute Minutes", "Add On Services", "premium;ultimate",
               "gitlab_dot_com", (
        PlanDef("1,000 Compute Minutes", 12, True, (
            ChargeDef("1,000 Compute Minutes", "OneTime", "Per Unit Pricing", "10", "Packs"),)),
    )),
    ProductDef("duo_pro", "GitLab Duo Pro", "Add On Services", "premium;ultimate",
               "gitlab_dot_com;self_managed", (
        PlanDef("Duo Pro - 1 Year", 12, True, (
            ChargeDef("Duo Pro - Users", "Recurring", "Per Unit Pricing", "228", "Seats"),)),
    )),
    ProductDef("duo_enterprise", "GitLab Duo Enterprise", "Add On Services", "ultimate",
               "gitlab_dot_com;self_managed", (
        PlanDef("Duo Enterprise - 1 Year", 12, False, (
            ChargeDef("Duo Enterprise - Users", "Recurring", "Per Unit Pricing", "468",
                      "Seats"),)),
    )),
    ProductDef("dedicated_storage", "Dedicated - Storage", "Add On Services", "ultimate",
               "dedicated", (
        PlanDef("Dedicated - Storage - 1 Year", 12, False, (
            ChargeDef("Dedicated - Storage (TB)", "Recurring", "Tiered Pricing", "0", "TB",
                      tiers=((1, 10, "1200"), (11, 50, "1000"), (51, None, "800"))),)),
    )),
    ProductDef("services", "Professional Services", "Miscellaneous Products", None, None, (
        PlanDef("Implementation Services", 12, False, (
            ChargeDef("Implementation Services", "OneTime", "Flat Fee Pricing", "15000", None),)),
    )),
)

# Which base products a subscription picks from, by deployment (the generator's weights).
BASE_KEYS = ("saas_premium", "saas_ultimate", "sm_premium", "sm_ultimate", "saas_bronze",
             "sm_starter", "dedicated")
ADDON_KEYS = {
    "gitlab_dot_com": ("storage", "compute", "duo_pro", "duo_enterprise"),
    "self_managed": ("duo_pro", "duo_enterprise", "services"),
    "dedicated": ("dedicated_storage", "services"),
}


def _price(usd: str, currency: str) -> Decimal:
    return (Decimal(usd) * FX[currency]).quantize(Decimal("0.01"))


def build_catalog(ids: IdFactory, rng: np.random.Generator) -> dict[str, pl.DataFrame]:
    """Typed catalog frames keyed by Zuora object name, plus ``_plans`` (one row per
    product rate plan charge with the facts the subscription generator needs)."""
    users = ["2c92a0fb4a7c2b0f014a8b6b11e10e2b", "2c92a0fd55822b4d015583ba46ef0a39"]
    products, plans, charges, tiers, lookup = [], [], [], [], []
    n_prod = len(PRODUCTS)
    prod_ids = ids.new(n_prod).to_list()
    created = dt.datetime(2017, 1, 3, 17, 0, 0)
    for pi, (p, pid) in enumerate(zip(PRODUCTS, prod_ids, strict=True)):
        products.append({
            "Id": pid, "Name": p.name, "SKU": f"SKU-{pi + 1:08d}",
            "ProductNumber": f"PC-{pi + 1:08d}", "Category": p.category,
            "Description": f"{p.name}.", "EffectiveStartDate": CATALOG_START,
            "EffectiveEndDate": p.retired or FOREVER, "Tier__c": p.tier,
            "DeploymentType__c": p.deployment, "CreatedById": users[0], "CreatedDate": created,
            "UpdatedById": users[1], "UpdatedDate": created + dt.timedelta(days=400 + pi),
        })
        for plan in p.plans:
            (prp_id,) = ids.new(1).to_list()
            end = min(plan.retired or FOREVER, p.retired or FOREVER)
            plans.append({
                "Id": prp_id, "ProductId": pid, "Name": plan.name,
                "Description": f"{plan.name} ({p.name})", "EffectiveStartDate": CATALOG_START,
                "EffectiveEndDate": end, "ProductRatePlanNumber": f"PRP-{len(plans) + 1:08d}",
                "WebDirect__c": plan.web_direct, "CreatedById": users[0], "CreatedDate": created,
                "UpdatedById": users[1], "UpdatedDate": created + dt.timedelta(days=30),
            })
            for ci, ch in enumerate(plan.charges):
                (prpc_id,) = ids.new(1).to_list()
                charges.append({
                    "Id": prpc_id, "ProductRatePlanId": prp_id, "Name": ch.name,
                    "ChargeType": ch.charge_type, "ChargeModel": ch.charge_model,
                    "BillingPeriod": "Annual" if plan.term_months != 1 else "Month",
                    "DefaultQuantity": Decimal(1), "UOM": ch.uom,
                    "TriggerEvent": "ContractEffective", "PriceChangeOption": "NoChange",
                    "ProductRatePlanChargeNumber": f"PRPC-{len(charges) + 1:08d}",
                    "Description": None, "CreatedById": users[0], "CreatedDate": created,
                    "UpdatedById": users[1],
                    "UpdatedDate": dt.datetime(2023, 4, 3, 9, 15, 0) if ch.old_price else created,
                })
                for cur in CURRENCIES:
                    specs = ch.tiers or ((None, None, ch.annual_price),)
                    for ti, (start, stop, usd) in enumerate(specs):
                        (tid,) = ids.new(1).to_list()
                        price = _price(usd, cur)
                        if plan.term_months == 1 and not ch.tiers:
                            price = _price(str(Decimal(usd) / 12), cur)
                        tiers.append({
                            "Id": tid, "ProductRatePlanChargeId": prpc_id, "Currency": cur,
                            "Tier": ti + 1,
                            "StartingUnit": Decimal(start) if start is not None else None,
                            "EndingUnit": Decimal(stop) if stop is not None else None,
                            "Price": price,
                            "PriceFormat": "FlatFee" if "Flat Fee" in ch.charge_model else "PerUnit",
                            "IsOveragePrice": False, "Active": True, "CreatedById": users[0],
                            "CreatedDate": created, "UpdatedById": users[1],
                            "UpdatedDate": created + dt.timedelta(days=1),
                        })
                        old = _price(ch.old_price, cur) if ch.old_price else price
                        if plan.term_months == 1 and ch.old_price:
                            old = _price(str(Decimal(ch.old_price) / 12), cur)
                        lookup.append({
                            "product_key": p.key, "deployment": p.deployment or "",
                            "product_id": pid, "prp_id": prp_id, "prp_name": plan.name,
                            "term_months": plan.term_months, "plan_retired": end,
                            "prpc_id": prpc_id, "charge_idx": ci, "charge_name": ch.name,
                            "charge_type": ch.charge_type, "charge_model": ch.charge_model,
                            "uom": ch.uom, "currency": cur, "tier": ti + 1,
                            "starting_unit": start, "ending_unit": stop,
                            "price_cents": int(price * 100), "old_price_cents": int(old * 100),
                            "billing_period": "Annual" if plan.term_months != 1 else "Month",
                        })
    from core.catalog import get
    from core.values import dtype_of

    def frame(name: str, rows: list[dict]) -> pl.DataFrame:
        spec = get(name)
        schema = {f.name: dtype_of(f) for f in spec.fields}
        return pl.DataFrame(rows, schema={k: v for k, v in schema.items()
                                          if k in rows[0]}).select(
            [pl.col(f.name) if f.name in rows[0] else pl.lit(None, dtype_of(f)).alias(f.name)
             for f in spec.fields])

    return {
        "Product": frame("Product", products),
        "ProductRatePlan": frame("ProductRatePlan", plans),
        "ProductRatePlanCharge": frame("ProductRatePlanCharge", charges),
        "ProductRatePlanChargeTier": frame("ProductRatePlanChargeTier", tiers),
        "_plans": pl.DataFrame(lookup, infer_schema_length=None),
    }
