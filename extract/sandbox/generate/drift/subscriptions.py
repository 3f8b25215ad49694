"""Drift on the subscription local copy: versions, fields, dates, decimals, status,
segments, latest pointers (D01–D09)."""

from __future__ import annotations

import polars as pl

from extract.sandbox.generate.drift.base import Scenario, World


def d01_missing_local_version(world: World, n: int) -> None:
    """A version the local copy never received (a missed Order Processed callout): an older,
    non-latest version so the order and the latest pointer stay right."""
    subs = world.zuora["Subscription"]
    mids = subs.filter((pl.col("Version") > 1) & ~pl.col("IsLatestVersion"))
    for name in world.claim_names(mids["Name"].unique(), n):
        vid = mids.filter(pl.col("Name") == name).sample(1, seed=int(world.rng.integers(1e9)))[
            "Id"].item()
        tree = world.subtree_ids([vid], "local")
        world.label_subtree("D01", [vid], "missing_in_local", "auto", "zuora",
                            detail=f"version of {name} missing locally")
        world.drop_local("zuora_local_rate_plan_charge_tiers", "zuora_id",
                         tree["RatePlanChargeTier"])
        world.drop_local("zuora_local_rate_plan_charges", "zuora_id", tree["RatePlanCharge"])
        world.drop_local("zuora_local_rate_plans", "zuora_id", tree["RatePlan"])
        world.drop_local("zuora_local_subscriptions", "zuora_id", [vid])


SCENARIOS: dict[str, Scenario] = {
    "D01": d01_missing_local_version,
}
