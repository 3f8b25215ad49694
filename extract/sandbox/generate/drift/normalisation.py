"""D26: representation-only differences a correct comparator must NOT report.

Each variation rewrites a local value into another spelling of the same thing (domain.md D26)
and records a ``none`` label, so a reconciler that reports it loses precision."""

from __future__ import annotations

import polars as pl

from extract.sandbox.generate.drift.base import World

D = "D26"


def _sample(world: World, frame: pl.DataFrame, key: str, rate: float) -> list:
    if frame.height == 0:
        return []
    n = max(1, int(frame.height * rate))
    idx = world.rng.choice(frame.height, size=min(n, frame.height), replace=False)
    return frame[key].gather(idx).to_list()


def _free_versions(world: World) -> pl.DataFrame:
    return world.zuora["Subscription"].filter(~pl.col("Name").is_in(sorted(world.claimed_names)))


def apply_d26(world: World, rate: float) -> None:
    subs = _free_versions(world)
    # "" vs NULL on custom fields (both directions)
    nulls = subs.filter(pl.col("TurnOnCloudLicensing__c").is_null())
    keys = _sample(world, nulls, "Id", rate)
    world.update_local("zuora_local_subscriptions", "zuora_id", keys,
                       turn_on_cloud_licensing__c=pl.lit(""))
    world.label(D, "Subscription", keys, "none", "none", field="TurnOnCloudLicensing__c",
                detail="Zuora NULL vs local empty string on a custom field")
    empties = subs.filter(pl.col("GitLabNamespaceId__c") == "")
    keys = _sample(world, empties, "Id", rate)
    world.update_local("zuora_local_subscriptions", "zuora_id", keys,
                       git_lab_namespace_id__c=pl.lit(None, pl.String))
    world.label(D, "Subscription", keys, "none", "none", field="GitLabNamespaceId__c",
                detail="Zuora empty string vs local NULL on a custom field")
    # Status spelling
    pending = subs.filter(pl.col("Status") == "Pending Activation")
    keys = _sample(world, pending, "Id", max(rate, 0.5))
    world.update_local("zuora_local_subscriptions", "zuora_id", keys,
                       status=pl.lit("PendingActivation"))
    world.label(D, "Subscription", keys, "none", "none", field="Status",
                detail="'Pending Activation' vs 'PendingActivation'")
    # Tier PriceFormat spelling, charge type spelling
    free_ids = subs["Id"].implode()
    charges = world.zuora["RatePlanCharge"].filter(pl.col("SubscriptionId").is_in(free_ids))
    tiers = world.zuora["RatePlanChargeTier"].filter(
        pl.col("RatePlanChargeId").is_in(charges["Id"].implode()))
    keys = _sample(world, tiers, "Id", rate)
    world.update_local("zuora_local_rate_plan_charge_tiers", "zuora_id", keys,
                       price_format=pl.col("price_format").str.replace(" ", ""))
    world.label(D, "RatePlanChargeTier", keys, "none", "none", field="PriceFormat",
                detail="'Per Unit' vs 'PerUnit'")
    onetime = charges.filter(pl.col("ChargeType") == "OneTime")
    keys = _sample(world, onetime, "Id", max(rate, 0.2))
    world.update_local("zuora_local_rate_plan_charges", "zuora_id", keys,
                       charge_type=pl.lit("One-Time"))
    world.label(D, "RatePlanCharge", keys, "none", "none", field="ChargeType",
                detail="'OneTime' vs 'One-Time' (the ZOQL filter spelling)")
    # E-mail case and whitespace
    accounts = world.zuora["Account"].filter(
        ~pl.col("Id").is_in(sorted(world.claimed_accounts)))
    contacts = world.zuora["Contact"].filter(
        pl.col("Id").is_in(pl.concat([accounts["BillToId"], accounts["SoldToId"]]).implode()))
    keys = _sample(world, contacts, "Id", rate)
    world.update_local("billing_account_contacts", "zuora_contact_id", keys,
                       work_email=" " + pl.col("work_email").str.to_uppercase() + " ")
    world.label(D, "Contact", keys, "none", "none", field="WorkEmail",
                detail="e-mail case and surrounding whitespace")
    # Account status 'Canceled' vs 'Cancelled'
    canceled = accounts.filter(pl.col("Status") == "Canceled")
    keys = _sample(world, canceled, "Id", max(rate, 0.5))
    world.update_local("billing_accounts", "zuora_account_id", keys,
                       zuora_account_status=pl.lit("Cancelled"))
    world.label(D, "Account", keys, "none", "none", field="Status",
                detail="account 'Canceled' vs 'Cancelled'")
    # Multiselect order on the catalog cache
    if world.has_catalog and "zuora_local_products" in world.local:
        multi = world.zuora["Product"].filter(pl.col("Tier__c").str.contains(";"))
        keys = _sample(world, multi, "Id", 1.0)[:2]
        world.update_local(
            "zuora_local_products", "zuora_id", keys,
            tier__c=pl.col("tier__c").str.split(";").list.reverse().list.join(" ; "))
        world.label(D, "Product", keys, "none", "none", field="Tier__c",
                    detail="multiselect values in another order and spacing")
