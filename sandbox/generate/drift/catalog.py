"""Drift on the product catalog cache (the LocalRecords ``zuora_local_product*`` tables):
stale prices, plans added or retired in Zuora, plans deleted while subscriptions use them
(D22, D23).

The catalog is written once, with chunk 0 (``world.has_catalog``); elsewhere these scenarios do
nothing. The two never touch the same plan: D22 works on plans that are current in the local
cache (and on rows it adds), D23 on plans the local cache already knows as retired.
Zuora-side additions are complete (product → plan → charge → one tier per currency), so the
Zuora catalog keeps its invariants (Z16).
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import polars as pl

from sandbox.generate.catalog import CURRENCIES, FOREVER, FX
from sandbox.generate.drift.accounts import append, past, patch
from sandbox.generate.drift.base import Scenario, World, split
from sandbox.generate.tenant import USERS

CAP = 3  # the catalog is a few dozen rows: a handful of changes per variant is plenty
NEW_PRODUCTS = (  # unclassified products: (name, USD list price per seat per year)
    ("GitLab Duo with Amazon Q", "228"), ("GitLab Duo Agent Platform", "588"),
    ("Enterprise Agile Planning", "180"), ("GitLab Observability", "120"),
    ("GitLab Secrets Manager", "60"),
)
RAISES = (Decimal("1.05"), Decimal("1.08"), Decimal("1.10"), Decimal("1.15"))


def has_catalog(world: World) -> bool:
    return world.has_catalog and all(
        t in world.local for t in ("zuora_local_products", "zuora_local_product_rate_plans",
                                   "zuora_local_product_rate_plan_charges",
                                   "zuora_local_product_rate_plan_charge_tiers"))


def _choose(world: World, items: list, k: int) -> list:
    items = sorted(items)
    if not items or k <= 0:
        return []
    idx = world.rng.choice(len(items), size=min(k, len(items)), replace=False)
    return [items[i] for i in sorted(idx)]


class _Numbers:
    """Next free natural keys (SKU-…, PC-…, PRP-…, PRPC-…) continuing the catalog's own."""

    def __init__(self, z: dict[str, pl.DataFrame]) -> None:
        def top(frame: pl.DataFrame, col: str) -> int:
            nums = [int(m.group(1)) for v in frame[col].drop_nulls()
                    if (m := re.search(r"(\d+)$", v))]
            return max(nums, default=frame.height)
        self.next = {"SKU": top(z["Product"], "SKU"), "PC": top(z["Product"], "ProductNumber"),
                     "PRP": top(z["ProductRatePlan"], "ProductRatePlanNumber"),
                     "PRPC": top(z["ProductRatePlanCharge"], "ProductRatePlanChargeNumber")}

    def take(self, prefix: str) -> str:
        self.next[prefix] += 1
        return f"{prefix}-{self.next[prefix]:08d}"


def _current_plans(world: World) -> pl.DataFrame:
    """Plans sellable today on both sides (Zuora and the cache), under a current product."""
    z, loc = world.zuora, world.local
    as_of = world.as_of
    cached = loc["zuora_local_product_rate_plans"].filter(
        pl.col("effective_end_date") > as_of)["zuora_id"]
    products = z["Product"].filter(pl.col("EffectiveEndDate") > as_of)["Id"]
    return z["ProductRatePlan"].filter(
        (pl.col("EffectiveEndDate") > as_of) & pl.col("Id").is_in(cached.implode())
        & pl.col("ProductId").is_in(products.implode()))


def _price_change(world: World, plans: list[str]) -> None:
    z = world.zuora
    charges = z["ProductRatePlanCharge"].filter(pl.col("ProductRatePlanId").is_in(plans))
    tiers = z["ProductRatePlanChargeTier"]
    priced = tiers.filter(pl.col("Price") > 0)["ProductRatePlanChargeId"].unique()
    charges = charges.filter(pl.col("Id").is_in(priced.implode()))
    # one charge per plan
    picked = [charges.filter(pl.col("ProductRatePlanId") == p)["Id"].sort()[0]
              for p in plans if charges.filter(pl.col("ProductRatePlanId") == p).height]
    prices, stamps, charge_stamps = {}, {}, {}
    for cid in picked:
        raise_by = RAISES[int(world.rng.integers(0, len(RAISES)))]
        when = past(world, 7, 120)
        charge_stamps[cid] = when
        for t in tiers.filter(pl.col("ProductRatePlanChargeId") == cid).iter_rows(named=True):
            prices[t["Id"]] = (t["Price"] * raise_by).quantize(Decimal("0.01"))
            stamps[t["Id"]] = when
    z["ProductRatePlanChargeTier"] = patch(patch(tiers, "Id", "Price", prices), "Id",
                                           "UpdatedDate", stamps)
    z["ProductRatePlanCharge"] = patch(z["ProductRatePlanCharge"], "Id", "UpdatedDate",
                                       charge_stamps)
    world.label("D22", "ProductRatePlanCharge", sorted(charge_stamps), "field_mismatch", "auto",
                field="UpdatedDate", detail="charge repriced in Zuora; cache not refreshed")
    world.label("D22", "ProductRatePlanChargeTier", sorted(prices), "field_mismatch", "auto",
                field="Price", detail="list price raised in Zuora; cache keeps the old price")
    world.label("D22", "ProductRatePlanChargeTier", sorted(stamps), "field_mismatch", "auto",
                field="UpdatedDate", detail="tier repriced in Zuora; cache not refreshed")


def _retire(world: World, plans: list[str]) -> None:
    z = world.zuora
    ends, stamps = {}, {}
    for pid in plans:
        end = world.as_of - dt.timedelta(days=int(world.rng.integers(1, 45)))
        ends[pid] = end
        stamps[pid] = dt.datetime.combine(end, dt.time(17)) - dt.timedelta(
            days=int(world.rng.integers(14, 90)))  # scheduled ahead by Billing Ops
    z["ProductRatePlan"] = patch(patch(z["ProductRatePlan"], "Id", "EffectiveEndDate", ends),
                                 "Id", "UpdatedDate", stamps)
    world.label("D22", "ProductRatePlan", sorted(ends), "field_mismatch", "auto",
                field="EffectiveEndDate", detail="plan retired in Zuora; cache still sells it")
    world.label("D22", "ProductRatePlan", sorted(stamps), "field_mismatch", "auto",
                field="UpdatedDate", detail="plan edited in Zuora; cache not refreshed")


def _audit(created: dt.datetime) -> dict:
    return {"CreatedById": USERS[1], "CreatedDate": created, "UpdatedById": USERS[1],
            "UpdatedDate": created}


def _add_plan(world: World, nums: _Numbers, product_id: str, name: str, web_direct: bool | None,
              start: dt.date, created: dt.datetime,
              charges: list[tuple[dict, dict[str, list[dict]]]]) -> dict[str, list[str]]:
    """Add a plan with ``charges`` (template charge row, tiers by currency) to Zuora; return
    the new ids by object."""
    z = world.zuora
    (prp_id,) = world.new_ids(1)
    plan = {"Id": prp_id, "ProductId": product_id, "Name": name,
            "Description": f"{name}.", "EffectiveStartDate": start,
            "EffectiveEndDate": FOREVER, "ProductRatePlanNumber": nums.take("PRP"),
            "WebDirect__c": web_direct, **_audit(created)}
    out = {"ProductRatePlan": [prp_id], "ProductRatePlanCharge": [],
           "ProductRatePlanChargeTier": []}
    charge_rows, tier_rows = [], []
    for charge, tiers in charges:
        (cid,) = world.new_ids(1)
        charge_rows.append({**charge, "Id": cid, "ProductRatePlanId": prp_id,
                            "ProductRatePlanChargeNumber": nums.take("PRPC"), **_audit(created)})
        out["ProductRatePlanCharge"].append(cid)
        for cur in CURRENCIES:
            for t in tiers[cur]:
                (tid,) = world.new_ids(1)
                tier_rows.append({**t, "Id": tid, "ProductRatePlanChargeId": cid,
                                  "Currency": cur, **_audit(created)})
                out["ProductRatePlanChargeTier"].append(tid)
    z["ProductRatePlan"] = append(z["ProductRatePlan"], [plan])
    z["ProductRatePlanCharge"] = append(z["ProductRatePlanCharge"], charge_rows)
    z["ProductRatePlanChargeTier"] = append(z["ProductRatePlanChargeTier"], tier_rows)
    return out


def _unique_name(z: dict[str, pl.DataFrame], product_id: str, name: str) -> str:
    taken = set(z["ProductRatePlan"].filter(pl.col("ProductId") == product_id)["Name"])
    out, i = name, 2
    while out in taken:
        out, i = f"{name} ({i})", i + 1
    return out


def _new_classified(world: World, templates: list[str], nums: _Numbers) -> None:
    """Clone current web-classified plans into new promotional plans of the same product."""
    z = world.zuora
    for tpl_id in templates:
        tpl = z["ProductRatePlan"].filter(pl.col("Id") == tpl_id).row(0, named=True)
        created = past(world, 7, 60)
        start = created.date() + dt.timedelta(days=1)
        charges = []
        for ch in z["ProductRatePlanCharge"].filter(
                pl.col("ProductRatePlanId") == tpl_id).sort("Id").iter_rows(named=True):
            tiers = z["ProductRatePlanChargeTier"].filter(
                pl.col("ProductRatePlanChargeId") == ch["Id"]).sort("Tier")
            by_cur = {cur: [{**t, "Price": (t["Price"] * Decimal("0.8")).quantize(
                Decimal("0.01"))} for t in tiers.filter(pl.col("Currency") == cur).iter_rows(
                named=True)] for cur in CURRENCIES}
            charges.append(({**ch, "Name": f"{ch['Name']} - Promo"}, by_cur))
        name = _unique_name(z, tpl["ProductId"], f"{tpl['Name']} - Promo {start.year}")
        web = tpl["WebDirect__c"] if tpl["WebDirect__c"] is not None else True
        ids = _add_plan(world, nums, tpl["ProductId"], name, web, start, created, charges)
        for obj, keys in ids.items():
            world.label("D22", obj, keys, "missing_in_local", "auto",
                        detail=f"new plan '{name}' (classified, WebDirect__c={web}) added in "
                        "Zuora; cache not refreshed")


def _new_unclassified(world: World, k: int, nums: _Numbers) -> None:
    """A new product with a plan nobody classified (Tier__c, DeploymentType__c, WebDirect__c
    all NULL): CustomersDot cannot tell what it is or whether to sell it."""
    z = world.zuora
    existing = set(z["Product"]["Name"])
    names = [p for p in NEW_PRODUCTS if p[0] not in existing][:k]
    for pname, usd in names:
        (pid,) = world.new_ids(1)
        created = past(world, 7, 60)
        start = created.date() + dt.timedelta(days=1)
        z["Product"] = append(z["Product"], [{
            "Id": pid, "Name": pname, "SKU": nums.take("SKU"), "ProductNumber": nums.take("PC"),
            "Category": "Add On Services", "Description": f"{pname}.",
            "EffectiveStartDate": start, "EffectiveEndDate": FOREVER, "Tier__c": None,
            "DeploymentType__c": None, **_audit(created)}])
        charge = {"Name": f"{pname} - Users", "ChargeType": "Recurring",
                  "ChargeModel": "Per Unit Pricing", "BillingPeriod": "Annual",
                  "DefaultQuantity": Decimal(1), "UOM": "Seats",
                  "TriggerEvent": "ContractEffective", "PriceChangeOption": "NoChange",
                  "Description": None}
        tiers = {cur: [{"Tier": 1, "StartingUnit": None, "EndingUnit": None,
                        "Price": (Decimal(usd) * FX[cur]).quantize(Decimal("0.01")),
                        "PriceFormat": "PerUnit", "IsOveragePrice": False, "Active": True}]
                 for cur in CURRENCIES}
        ids = _add_plan(world, nums, pid, f"{pname} - 1 Year", None, start, created,
                        [(charge, tiers)])
        detail = f"new unclassified product '{pname}' added in Zuora; cache not refreshed"
        world.label("D22", "Product", [pid], "missing_in_local", "auto", detail=detail)
        for obj, keys in ids.items():
            world.label("D22", obj, keys, "missing_in_local", "auto", detail=detail)
        world.label("D22", "ProductRatePlan", ids["ProductRatePlan"], "rule_violation", "human",
                    rule="D22", detail="new plan with no tier/deployment/web-direct "
                    "classification: needs a CustomersDot config/code decision")


def d22_product_catalog_drift(world: World, n: int) -> None:
    """The local catalog cache (LocalRecords) is stale against Zuora's product catalog.

    Arises: the cache is refreshed by hand (Rails console) and a full refresh needs a restart;
    the export job failed or timed out (the tier export is slow); ``all``/``find_each`` keep
    serving the old store (seed 004, domain.md D22). Variants: a list price raised in Zuora; a
    new, classified plan; a new product and plan nobody classified (🔒 classification); a
    plan retired in Zuora. The refresh itself is automatic (an atomic full refresh), so every
    row difference is ``auto``; only the classification of the unclassified plan is human."""
    if not has_catalog(world) or n <= 0:
        return
    k = min(CAP, max(split(n, 4)[0], 1))
    nums = _Numbers(world.zuora)
    current = _current_plans(world)
    ids = current["Id"].to_list()
    price_plans = _choose(world, ids, k)
    rest = [p for p in ids if p not in price_plans]
    retire_plans = _choose(world, rest, k)
    classified_products = world.zuora["Product"].filter(
        pl.col("Tier__c").is_not_null() & pl.col("DeploymentType__c").is_not_null())["Id"]
    templates = _choose(world, current.filter(
        pl.col("ProductId").is_in(classified_products.implode())
        & pl.col("WebDirect__c").is_not_null()
        & ~pl.col("Id").is_in(retire_plans))["Id"].to_list(), k)
    _price_change(world, price_plans)
    _new_classified(world, templates, nums)
    _new_unclassified(world, k, nums)
    _retire(world, retire_plans)


def d23_catalog_row_deleted_but_referenced(world: World, n: int) -> None:
    """A retired product rate plan (with its charges and tiers) was deleted from the Zuora
    catalog although subscriptions still reference it; the cache still has the rows.

    Arises: catalog clean-up of legacy plans (e.g. Bronze/Starter) by Billing Ops, or an export
    that no longer returns them. Subscription data must never be deleted and the cache rows are
    the only description of what those subscriptions bought: report only, no deletion
    (domain.md D23)."""
    if not has_catalog(world) or n <= 0:
        return
    z, loc = world.zuora, world.local
    retired = loc["zuora_local_product_rate_plans"].filter(
        pl.col("effective_end_date") < world.as_of)["zuora_id"]
    plans = z["ProductRatePlan"].filter(
        (pl.col("EffectiveEndDate") < world.as_of) & pl.col("Id").is_in(retired.implode()))
    refs = (loc["zuora_local_rate_plans"]
            .filter(pl.col("product_rate_plan_id").is_in(plans["Id"].implode()))
            .group_by("product_rate_plan_id").agg(uses=pl.len())
            .sort("uses", "product_rate_plan_id"))
    # few users: choose among the least referenced legacy plans
    k = min(n, 2)
    candidates = refs.head(max(2 * k, 3))["product_rate_plan_id"].to_list()
    for prp in _choose(world, candidates, k):
        subs = loc["zuora_local_rate_plans"].filter(pl.col("product_rate_plan_id") == prp)[
            "subscription_id"]
        names = loc["zuora_local_subscriptions"].filter(
            pl.col("zuora_id").is_in(subs.implode()))["name"].unique()
        world.claim_names(names, names.len())
        charges = z["ProductRatePlanCharge"].filter(pl.col("ProductRatePlanId") == prp)["Id"]
        tiers = z["ProductRatePlanChargeTier"].filter(
            pl.col("ProductRatePlanChargeId").is_in(charges.implode()))["Id"]
        world.drop_zuora("ProductRatePlanChargeTier", tiers.to_list())
        world.drop_zuora("ProductRatePlanCharge", charges.to_list())
        world.drop_zuora("ProductRatePlan", [prp])
        lch = loc["zuora_local_product_rate_plan_charges"].filter(
            pl.col("product_rate_plan_id") == prp)["zuora_id"]
        ltr = loc["zuora_local_product_rate_plan_charge_tiers"].filter(
            pl.col("product_rate_plan_charge_id").is_in(lch.implode()))["zuora_id"]
        detail = "catalog row deleted in Zuora while subscriptions reference its plan; keep it"
        world.label("D23", "ProductRatePlan", [prp], "orphaned_in_local", "human", detail=detail)
        world.label("D23", "ProductRatePlanCharge", sorted(lch), "orphaned_in_local", "human",
                    detail=detail)
        world.label("D23", "ProductRatePlanChargeTier", sorted(ltr), "orphaned_in_local",
                    "human", detail=detail)
        world.label("D23", "ProductRatePlan", [prp], "rule_violation", "human", rule="D23",
                    detail=f"{refs.filter(pl.col('product_rate_plan_id') == prp)['uses'].item()}"
                    " local subscription rate plans reference a plan absent from the Zuora "
                    "catalog")


SCENARIOS: dict[str, Scenario] = {
    "D22": d22_product_catalog_drift,
    "D23": d23_catalog_row_deleted_but_referenced,
}
