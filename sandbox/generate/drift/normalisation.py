"""D26: representation-only differences a correct comparator must NOT report.

Each variation rewrites a local value into another spelling of the same thing (domain.md D26)
and records a ``none`` label, so a reconciler that reports it loses precision."""

from __future__ import annotations

import polars as pl

from core.catalog import get
from sandbox.generate.drift.base import World

D = "D26"


def _sample(world: World, frame: pl.DataFrame, key: str, rate: float) -> list:
    if frame.height == 0:
        return []
    n = max(1, int(frame.height * rate))
    idx = world.rng.choice(frame.height, size=min(n, frame.height), replace=False)
    return frame[key].gather(idx).to_list()


def _free_versions(world: World) -> pl.DataFrame:
    return world.zuora["Subscription"].filter(~pl.col("Name").is_in(sorted(world.claimed_names)))


def _vary(world: World, obj: str, candidates: pl.DataFrame, rate: float, field: str,
          local_value: pl.Expr, detail: str) -> None:
    """Rewrite ``field`` on a sample of ``candidates`` (Zuora rows of ``obj``) into another
    spelling of the same value on the local side, and label it as must-not-report."""
    spec = get(obj)
    keys = _sample(world, candidates, "Id", rate)
    world.update_local(spec.table, spec.key_column, keys,
                       **{spec.field(field).column: local_value})
    world.label(D, obj, keys, "none", "none", field=field, detail=detail)


def apply_d26(world: World, rate: float) -> None:
    subs = _free_versions(world)
    charges = world.zuora["RatePlanCharge"].filter(
        pl.col("SubscriptionId").is_in(subs["Id"].implode()))
    tiers = world.zuora["RatePlanChargeTier"].filter(
        pl.col("RatePlanChargeId").is_in(charges["Id"].implode()))
    accounts = world.zuora["Account"].filter(
        ~pl.col("Id").is_in(sorted(world.claimed_accounts)))
    contacts = world.zuora["Contact"].filter(
        pl.col("Id").is_in(pl.concat([accounts["BillToId"], accounts["SoldToId"]]).implode()))
    variations = [
        ("Subscription", subs.filter(pl.col("TurnOnCloudLicensing__c").is_null()), rate,
         "TurnOnCloudLicensing__c", pl.lit(""),
         "Zuora NULL vs local empty string on a custom field"),
        ("Subscription", subs.filter(pl.col("GitLabNamespaceId__c") == ""), rate,
         "GitLabNamespaceId__c", pl.lit(None, pl.String),
         "Zuora empty string vs local NULL on a custom field"),
        ("Subscription", subs.filter(pl.col("Status") == "Pending Activation"), max(rate, 0.5),
         "Status", pl.lit("PendingActivation"), "'Pending Activation' vs 'PendingActivation'"),
        ("RatePlanChargeTier", tiers, rate, "PriceFormat",
         pl.col("price_format").str.replace(" ", ""), "'Per Unit' vs 'PerUnit'"),
        ("RatePlanCharge", charges.filter(pl.col("ChargeType") == "OneTime"), max(rate, 0.2),
         "ChargeType", pl.lit("One-Time"), "'OneTime' vs 'One-Time' (the ZOQL filter spelling)"),
        ("Contact", contacts, rate, "WorkEmail",
         " " + pl.col("work_email").str.to_uppercase() + " ",
         "e-mail case and surrounding whitespace"),
        ("Account", accounts.filter(pl.col("Status") == "Canceled"), max(rate, 0.5), "Status",
         pl.lit("Cancelled"), "account 'Canceled' vs 'Cancelled'"),
    ]
    if world.has_catalog and "zuora_local_products" in world.local:
        multi = world.zuora["Product"].filter(pl.col("Tier__c").str.contains(";")).head(2)
        variations.append(("Product", multi, 1.0, "Tier__c",
                           pl.col("tier__c").str.split(";").list.reverse().list.join(" ; "),
                           "multiselect values in another order and spacing"))
    for obj, candidates, r, field, value, detail in variations:
        _vary(world, obj, candidates, r, field, value, detail)
